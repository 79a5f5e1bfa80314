# manifest validation tests

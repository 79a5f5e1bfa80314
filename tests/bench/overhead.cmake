# all-in overhead benchmark tools

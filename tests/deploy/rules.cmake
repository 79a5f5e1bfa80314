# alert-rule and dashboard tests

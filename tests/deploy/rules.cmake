# Alert rules and dashboard: promtool check/test of deploy/prometheus/rules.yml,
# deploy/kubernetes/prometheusrule.yaml kept equal to it, metric names checked
# against README.md, and every Grafana query parsed (tests/deploy/check_rules.sh).
# Unprivileged; needs promtool (deploy/local/deps.sh) and python3.
add_test(NAME deploy.rules
         COMMAND bash tests/deploy/check_rules.sh
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(deploy.rules PROPERTIES LABELS deploy TIMEOUT 120)

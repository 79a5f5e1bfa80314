# manifest validation tests: deploy/docker/Dockerfile (statically) and
# deploy/kubernetes (rendered with kubectl kustomize, validated offline against
# the Kubernetes and prometheus-operator schemas, security properties
# asserted). Needs kubectl, node and npm; the npm packages pinned in
# tests/deploy/package-lock.json are installed into the build tree.
add_test(NAME deploy.manifests
         COMMAND bash tests/deploy/validate_manifests.sh
         WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
# TCPKA_BIN: the built agent, to check the image's runtime packages against its
# shared libraries and the ConfigMap's tcpka.toml against its parser.
set_tests_properties(deploy.manifests PROPERTIES
  ENVIRONMENT "TCPKA_BIN=$<TARGET_FILE:tcpka>;TCPKA_DEPLOY_NODE_DIR=${CMAKE_BINARY_DIR}/deploy-validate"
  TIMEOUT 300)

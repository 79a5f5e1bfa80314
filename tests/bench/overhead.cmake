# all-in overhead benchmark tools: the load generator of tests/bench/overhead.sh
# (request/response, connection churn) and tests/bench/scrape.sh (keepalive ports).
add_executable(tcpka_bench_loadgen loadgen.cpp)
target_link_libraries(tcpka_bench_loadgen PRIVATE Threads::Threads)

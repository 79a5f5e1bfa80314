# BPF cost benchmark tools (tests/bench/bpf_cost.sh): the empty floor programs
# and their loader, and the loads that drive the hooks.
tcpka_bpf_skeleton(floor floor.bpf.c)
add_executable(tcpka_bench_floor floor_loader.cpp)
target_link_libraries(tcpka_bench_floor PRIVATE floor_skel PkgConfig::LIBBPF)
add_executable(tcpka_bench_keepalive_load keepalive_load.cpp)
add_executable(tcpka_bench_storm storm.cpp)
target_link_libraries(tcpka_bench_storm PRIVATE Threads::Threads)

# BPF cost benchmark tools (tests/bench/bpf_cost.sh): the empty floor programs
# and their loader, and the storm load that drives the hooks with no keepalive
# (its keepalive load is tcpka_hold_sockets --keepalive).
tcpka_bpf_skeleton(floor floor.bpf.c)
add_executable(tcpka_bench_floor floor_loader.cpp)
target_link_libraries(tcpka_bench_floor PRIVATE floor_skel PkgConfig::LIBBPF)
add_executable(tcpka_bench_storm storm.cpp)
target_link_libraries(tcpka_bench_storm PRIVATE Threads::Threads)

# probe_accuracy.sh's witness (tests/common/probe_witness.bpf.c).
add_executable(tcpka_bench_witness witness.cpp)
target_include_directories(tcpka_bench_witness PRIVATE ${CMAKE_SOURCE_DIR}/tests/common)
target_link_libraries(tcpka_bench_witness PRIVATE probe_witness_skel PkgConfig::LIBBPF)

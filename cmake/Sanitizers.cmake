# Compiler flags for the sanitizer build (TCPKA_SANITIZE) and the fuzz build
# (TCPKA_FUZZ). Both apply to every C and C++ target of the build directory;
# the BPF objects are built by their own clang command and stay as they are.

if(TCPKA_SANITIZE AND TCPKA_FUZZ)
  message(FATAL_ERROR "TCPKA_SANITIZE and TCPKA_FUZZ are separate builds: pick one")
endif()

if(TCPKA_SANITIZE)
  if(TCPKA_SANITIZE STREQUAL "ON")
    set(_tcpka_san "address,undefined")
  else()
    set(_tcpka_san "${TCPKA_SANITIZE}")
  endif()
  # -fno-sanitize-recover: an undefined-behaviour report ends the process with
  # a failure instead of printing and carrying on, so a test cannot pass over it.
  add_compile_options(-fsanitize=${_tcpka_san} -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  # GCC's flow analysis gives false -Wmaybe-uninitialized warnings under the
  # sanitizers' instrumentation (its manual says so), here in std::regex.
  add_compile_options($<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>)
  add_link_options(-fsanitize=${_tcpka_san} -fno-sanitize-recover=all)
  message(STATUS "tcpka: building with -fsanitize=${_tcpka_san}")
endif()

if(TCPKA_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "TCPKA_FUZZ needs clang (libFuzzer): "
                        "CC=clang CXX=clang++ cmake -S . -B build-fuzz -DTCPKA_FUZZ=ON")
  endif()
  # Everything gets coverage instrumentation and ASan+UBSan; only the fuzz
  # targets link libFuzzer's main() (tests/fuzz/CMakeLists.txt).
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined -fno-sanitize-recover=all)
endif()

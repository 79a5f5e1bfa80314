# Compiling BPF programs into libbpf skeletons.
#
# vmlinux.h is generated from the build host's /sys/kernel/btf/vmlinux unless
# TCPKA_VMLINUX_H names a file. Every type we use is read through CO-RE, so the
# header only has to *contain* the types; the object then runs on any kernel
# with BTF. Generating it keeps the repository free of a 3 MB machine-made file;
# pass -DTCPKA_VMLINUX_H=/path/to/vmlinux.h for a build that must not depend on
# the build host's kernel (container builds, reproducible builds).

find_program(BPF_CLANG NAMES clang REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)
set(TCPKA_VMLINUX_H "" CACHE FILEPATH "vmlinux.h to use instead of generating one")

set(_tcpka_vmlinux_dir ${CMAKE_BINARY_DIR}/bpf-include)
if(TCPKA_VMLINUX_H)
  configure_file(${TCPKA_VMLINUX_H} ${_tcpka_vmlinux_dir}/vmlinux.h COPYONLY)
else()
  if(NOT EXISTS /sys/kernel/btf/vmlinux)
    message(FATAL_ERROR "no /sys/kernel/btf/vmlinux: set TCPKA_VMLINUX_H to a vmlinux.h")
  endif()
  add_custom_command(
    OUTPUT ${_tcpka_vmlinux_dir}/vmlinux.h
    COMMAND ${CMAKE_COMMAND} -E make_directory ${_tcpka_vmlinux_dir}
    COMMAND ${BPFTOOL} btf dump file /sys/kernel/btf/vmlinux format c > ${_tcpka_vmlinux_dir}/vmlinux.h.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${_tcpka_vmlinux_dir}/vmlinux.h.tmp ${_tcpka_vmlinux_dir}/vmlinux.h
    COMMENT "Generating vmlinux.h from the running kernel's BTF"
    VERBATIM)
endif()
add_custom_target(tcpka_vmlinux_h DEPENDS ${_tcpka_vmlinux_dir}/vmlinux.h)

# tcpka_bpf_skeleton(<name> <source.bpf.c>)
# Builds <name>.skel.h into the target <name>_skel (an INTERFACE library that
# puts the skeleton on the include path). Headers are tracked through clang's
# depfile, so editing bpf/include/*.bpf.h or bpf/tcpka.h rebuilds the skeleton.
function(tcpka_bpf_skeleton name source)
  set(out ${CMAKE_CURRENT_BINARY_DIR})
  set(src ${CMAKE_CURRENT_SOURCE_DIR}/${source})
  add_custom_command(
    OUTPUT ${out}/${name}.tmp.o
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_x86
            -Wall -Wextra -Wno-unused-parameter -Werror
            -I${_tcpka_vmlinux_dir} -I${CMAKE_CURRENT_SOURCE_DIR}
            -MD -MF ${out}/${name}.d -c ${src} -o ${out}/${name}.tmp.o
    DEPENDS ${src} tcpka_vmlinux_h ${_tcpka_vmlinux_dir}/vmlinux.h
    DEPFILE ${out}/${name}.d
    COMMENT "BPF ${source}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${out}/${name}.skel.h
    COMMAND ${BPFTOOL} gen object ${out}/${name}.bpf.o ${out}/${name}.tmp.o
    COMMAND ${BPFTOOL} gen skeleton ${out}/${name}.bpf.o name ${name}_bpf > ${out}/${name}.skel.h.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${out}/${name}.skel.h.tmp ${out}/${name}.skel.h
    DEPENDS ${out}/${name}.tmp.o
    COMMENT "Skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(${name}_skel_gen DEPENDS ${out}/${name}.skel.h)
  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_skel_gen)
  target_include_directories(${name}_skel INTERFACE ${out} ${CMAKE_CURRENT_SOURCE_DIR})
endfunction()

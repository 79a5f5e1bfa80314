# Compiling BPF programs into libbpf skeletons.
#
# vmlinux.h is pinned: bpf/include/vmlinux/vmlinux.h, the BTF of one kernel
# (its first line says which), checked in. The objects read every kernel type
# through CO-RE, so they load on any kernel with BTF whatever header they were
# built with; what the header decides is which types and fields the source may
# name. Generated from the build host's kernel (as it once was), a build on an
# older kernel would not compile, and a build on a newer one could compile a
# field that older kernels lack without anyone noticing. Pinned, every build
# is the same wherever it runs (a container build needs no kernel BTF), and
# fields that some kernels lack are named only through local CO-RE flavours
# behind existence checks (bpf/include/tka_compat.bpf.h). tests/matrix proves
# the objects on each kernel of the matrix. bpf/include/vmlinux/update.sh
# makes the header again.

find_program(BPF_CLANG NAMES clang REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)
set(_tcpka_vmlinux_dir ${CMAKE_SOURCE_DIR}/bpf/include/vmlinux)

# One object from one source: clang with -DTKA_RO=<ro>, then bpftool gen
# object and gen skeleton into <name>.skel.h.
function(_tcpka_bpf_object name src ro)
  set(out ${CMAKE_CURRENT_BINARY_DIR})
  add_custom_command(
    OUTPUT ${out}/${name}.tmp.o
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -mcpu=v3 -D__TARGET_ARCH_x86 -DTKA_RO=${ro}
            -Wall -Wextra -Wno-unused-parameter -Werror
            -I${_tcpka_vmlinux_dir} -I${CMAKE_CURRENT_SOURCE_DIR}
            -MD -MF ${out}/${name}.d -c ${src} -o ${out}/${name}.tmp.o
    DEPENDS ${src} ${_tcpka_vmlinux_dir}/vmlinux.h
    DEPFILE ${out}/${name}.d
    COMMENT "BPF ${name} (TKA_RO=${ro})"
    VERBATIM)
  add_custom_command(
    OUTPUT ${out}/${name}.skel.h
    COMMAND ${BPFTOOL} gen object ${out}/${name}.bpf.o ${out}/${name}.tmp.o
    COMMAND ${BPFTOOL} gen skeleton ${out}/${name}.bpf.o name ${name}_bpf > ${out}/${name}.skel.h.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${out}/${name}.skel.h.tmp ${out}/${name}.skel.h
    DEPENDS ${out}/${name}.tmp.o
    COMMENT "Skeleton ${name}.skel.h"
    VERBATIM)
endfunction()

# tcpka_bpf_skeleton(<name> <source.bpf.c> [TWINS])
# Builds <name>.skel.h into the target <name>_skel (an INTERFACE library that
# puts the skeleton on the include path). Headers are tracked through clang's
# depfile, so editing bpf/include/*.bpf.h or bpf/tcpka.h rebuilds the skeleton.
#
# Without TWINS the object is built once, with bpf_probe_read_kernel reads
# (TKA_RO=0): it loads on every kernel. With TWINS, <name>.skel.h is built with
# plain loads through bpf_rdonly_cast (TKA_RO=1, Linux 6.2+) and
# <name>_compat.skel.h with TKA_RO=0; the agent opens the one skeleton type
# with either object's bytes (tka_compat.bpf.h says why), so a build step
# fails unless the two skeletons match but for their bytes and names.
function(tcpka_bpf_skeleton name source)
  cmake_parse_arguments(ARG "TWINS" "" "" ${ARGN})
  set(out ${CMAKE_CURRENT_BINARY_DIR})
  set(src ${CMAKE_CURRENT_SOURCE_DIR}/${source})
  set(outputs ${out}/${name}.skel.h)
  if(ARG_TWINS)
    _tcpka_bpf_object(${name} ${src} 1)
    _tcpka_bpf_object(${name}_compat ${src} 0)
    add_custom_command(
      OUTPUT ${out}/${name}.twins.stamp
      COMMAND ${CMAKE_COMMAND} -DA=${out}/${name}.skel.h -DB=${out}/${name}_compat.skel.h
              -DNAME=${name} -DSTAMP=${out}/${name}.twins.stamp
              -P ${CMAKE_SOURCE_DIR}/cmake/BpfTwinsCheck.cmake
      DEPENDS ${out}/${name}.skel.h ${out}/${name}_compat.skel.h
              ${CMAKE_SOURCE_DIR}/cmake/BpfTwinsCheck.cmake
      COMMENT "Skeletons ${name} and ${name}_compat match"
      VERBATIM)
    list(APPEND outputs ${out}/${name}_compat.skel.h ${out}/${name}.twins.stamp)
  else()
    _tcpka_bpf_object(${name} ${src} 0)
  endif()
  add_custom_target(${name}_skel_gen DEPENDS ${outputs})
  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_skel_gen)
  target_include_directories(${name}_skel INTERFACE ${out} ${CMAKE_CURRENT_SOURCE_DIR})
endfunction()

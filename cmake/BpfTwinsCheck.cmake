# cmake -DA=<name>.skel.h -DB=<name>_compat.skel.h -DNAME=<name> -DSTAMP=<file>
#   -P BpfTwinsCheck.cmake
# Fails unless the two skeletons declare the same maps, programs and global
# variables in the same layout: they may differ only in the object bytes they
# embed and in their names (see tcpka_bpf_skeleton(TWINS)).
foreach(f A B)
  file(READ ${${f}} text)
  # The embedded object: a function body of \xNN escapes (no brace inside).
  string(REGEX REPLACE "__elf_bytes\\(size_t \\*sz\\)\n\\{[^}]*\\}" "__elf_bytes(size_t *sz) {}"
         text "${text}")
  string(REPLACE "${NAME}_compat_bpf" "${NAME}_bpf" text "${text}")
  # Internal maps are named after the object ("state_co.rodata"); opened
  # through the other skeleton, the object takes that skeleton's name.
  string(REGEX REPLACE "name = \"[^\".]*\\." "name = \"." text "${text}")
  string(TOUPPER "${NAME}" upper)
  string(REPLACE "__${upper}_COMPAT_BPF_SKEL_H__" "__${upper}_BPF_SKEL_H__" text "${text}")
  set(${f}_text "${text}")
endforeach()
if(NOT A_text STREQUAL B_text)
  message(FATAL_ERROR
          "${A} and ${B} differ in more than their object bytes: the TKA_RO=0 and TKA_RO=1 "
          "builds of ${NAME} must have the same maps, programs and globals")
endif()
file(WRITE ${STAMP} "ok\n")

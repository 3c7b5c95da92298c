# cmake -D LINKER=ld -D OBJCOPY=objcopy -D NM=nm -D OUTPUT=file.o
#       -D INPUTS="a.o;b.o;lib.a" -P cmake/prelink.cmake
#
# Links INPUTS (cgr's objects and the static CUDA runtime) into one
# relocatable object in which only cgr's own names (cgr_*) stay global.
# Every other symbol the object defines is renamed with a private prefix
# before it is made local: C++ code (the CUDA runtime, the CUDA objects'
# template instances) puts functions in COMDAT groups named after a symbol,
# and the linker keeps one group of a name per program. Were the names kept,
# a program linking libcgr.a and a CUDA runtime of its own would drop its
# runtime's groups in favor of ours, whose symbols it cannot see.
foreach(variable LINKER OBJCOPY NM OUTPUT INPUTS)
  if(NOT DEFINED ${variable})
    message(FATAL_ERROR "prelink.cmake: -D ${variable}=... is required")
  endif()
endforeach()

set(all "${OUTPUT}.all")
execute_process(COMMAND "${LINKER}" -r -o "${all}" ${INPUTS}
  COMMAND_ERROR_IS_FATAL ANY)

execute_process(COMMAND "${NM}" --defined-only --format=posix "${all}"
  OUTPUT_VARIABLE symbols COMMAND_ERROR_IS_FATAL ANY)
string(REPLACE "\n" ";" symbols "${symbols}")
set(names "")
foreach(line IN LISTS symbols)
  # posix format: NAME TYPE VALUE [SIZE]
  if(NOT line MATCHES "^([^ ]+) [A-Za-z] ")
    continue()
  endif()
  set(name "${CMAKE_MATCH_1}")
  if(name MATCHES "^cgr_" OR name MATCHES "^\\.")
    continue()
  endif()
  list(APPEND names "${name}")
endforeach()
# Local names repeat (one per object file); objcopy wants each once.
list(REMOVE_DUPLICATES names)
set(renames "")
foreach(name IN LISTS names)
  string(APPEND renames "${name} __cgr_private_${name}\n")
endforeach()
file(WRITE "${OUTPUT}.renames" "${renames}")

execute_process(COMMAND "${OBJCOPY}" "--redefine-syms=${OUTPUT}.renames"
  --wildcard "--keep-global-symbol=cgr_*" "${all}" "${OUTPUT}"
  COMMAND_ERROR_IS_FATAL ANY)
file(REMOVE "${all}" "${OUTPUT}.renames")

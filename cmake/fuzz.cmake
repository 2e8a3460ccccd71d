# fuzz.cmake - the libFuzzer targets (make fuzz), included at the end of
# CMakeLists.txt when MP_FUZZ is ON. Every tests/fuzz/fuzz_<name>.c that
# defines LLVMFuzzerTestOneInput becomes build-fuzz/fuzz/fuzz_<name>, built
# with the library's sources under -fsanitize=fuzzer,address,undefined;
# tests/fuzz/run.sh runs each on a copy of tests/fuzz/corpus/<name>/.
# A new target is picked up by the glob: no edit here.
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "MP_FUZZ needs clang (libFuzzer): configure with "
                      "CC=clang (Debian packages clang, libclang-rt-14-dev)")
endif()
set(MP_FUZZ_FLAGS -fsanitize=fuzzer-no-link,address,undefined
                  -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g)
# The library's objects are instrumented for coverage and the sanitizers;
# the targets themselves link libFuzzer's main.
target_compile_options(mp_objects PRIVATE ${MP_FUZZ_FLAGS})
file(GLOB fuzz_sources CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
set(fuzz_exes)
foreach(src ${fuzz_sources})
  get_filename_component(exe ${src} NAME_WE)
  add_executable(${exe} ${src} $<TARGET_OBJECTS:mp_objects>)
  target_compile_options(${exe} PRIVATE ${MP_FUZZ_FLAGS})
  target_include_directories(${exe} PRIVATE ${CMAKE_SOURCE_DIR}/include
                             ${CMAKE_SOURCE_DIR}/src
                             ${CMAKE_BINARY_DIR}/generated)
  target_link_options(${exe} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(${exe} PRIVATE Threads::Threads rt m
                        PkgConfig::LIBCRYPTO PkgConfig::MSGPACK)
  set_target_properties(${exe} PROPERTIES RUNTIME_OUTPUT_DIRECTORY
                        ${CMAKE_BINARY_DIR}/fuzz EXCLUDE_FROM_ALL ON)
  list(APPEND fuzz_exes ${exe})
endforeach()
add_custom_target(fuzz_all DEPENDS ${fuzz_exes})

# mpi.cmake - the optional MPI backend of the pool (src/mpi/, src/pool_mpi.c).
# On when CMake finds an MPI C library (Debian: libopenmpi-dev) and MP_MPI
# is ON; the library then links it, MP_HAVE_MPI is 1 in the sources, and
# the MPI tests run each case under mpirun on loopback. Off, the same
# sources build as stubs: an MPI pool is MP_ENOTSUP.
option(MP_MPI "Build the MPI pool backend when an MPI library is found" ON)
set(MP_HAVE_MPI 0)
if(MP_MPI)
  find_package(MPI COMPONENTS C QUIET)
  if(MPI_C_FOUND)
    set(MP_HAVE_MPI 1)
  endif()
endif()
target_compile_definitions(mp_objects PRIVATE MP_HAVE_MPI=${MP_HAVE_MPI})
if(MP_HAVE_MPI)
  target_link_libraries(mp_objects PRIVATE MPI::MPI_C)
  target_link_libraries(multiproc PRIVATE MPI::MPI_C)
  # The static library's users link libmpi too; installed, by its path (the
  # exported package then needs no find_package(MPI)).
  target_link_libraries(multiproc_static PUBLIC
    $<BUILD_INTERFACE:MPI::MPI_C> $<INSTALL_INTERFACE:${MPI_C_LIBRARIES}>)
  # The fuzz targets (cmake/fuzz.cmake, included before this file) link
  # mp_objects' objects directly, so they need libmpi themselves.
  foreach(exe ${fuzz_exes})
    target_link_libraries(${exe} PRIVATE MPI::MPI_C)
  endforeach()
  # pkg-config --static: libmpi by its path, as the static CMake target has it.
  string(REPLACE ";" " " MP_PC_MPI_LIBS "${MPI_C_LIBRARIES}")
  set(MP_MPI_STATE "on (MPI ${MPI_C_VERSION}, ${MPIEXEC_EXECUTABLE})")
else()
  set(MP_MPI_STATE "off (no MPI library found; apt-get install libopenmpi-dev openmpi-bin)")
endif()
message(STATUS "multiproc: MPI pool backend: ${MP_MPI_STATE}")
# For scripts (examples/demo_pool.sh): "on ..." or "off ...".
file(WRITE ${CMAKE_BINARY_DIR}/mpi_backend.txt "${MP_MPI_STATE}\n")
install(CODE "message(STATUS \"multiproc: MPI pool backend: ${MP_MPI_STATE}\")")

# Each case of tests/mpi/test_mpi_pool.c (listed as MP_MPI_CASE(name)) runs
# as its own test under mpirun: 3 ranks on this host, loopback only, root
# allowed through Open MPI's own variables; --enable-recovery keeps the
# job alive when a rank dies (the killed-rank cases need it).
if(MP_HAVE_MPI AND BUILD_TESTING)
  set(MP_MPIRUN_ARGS --oversubscribe --enable-recovery
      --mca btl self,vader,tcp --mca btl_tcp_if_include lo
      --mca oob_tcp_if_include lo)
  add_executable(test_mpi_pool tests/mpi/test_mpi_pool.c)
  target_link_libraries(test_mpi_pool PRIVATE multiproc)
  file(STRINGS tests/mpi/test_mpi_pool.c lines REGEX "MP_MPI_CASE\\(")
  foreach(line ${lines})
    string(REGEX MATCH "MP_MPI_CASE\\(([A-Za-z0-9_]+)" _ ${line})
    set(case ${CMAKE_MATCH_1})
    add_test(NAME mpi_pool.${case}
             COMMAND ${MPIEXEC_EXECUTABLE} ${MP_MPIRUN_ARGS} -n 3
                     $<TARGET_FILE:test_mpi_pool> ${case})
    # Under --enable-recovery mpirun exits 0 whatever rank 0 returned: a
    # case passes only when rank 0 printed its "OK <case>" line.
    set_tests_properties(mpi_pool.${case} PROPERTIES
      PASS_REGULAR_EXPRESSION "(^|\n)OK ${case}(\r?\n|$)"
      FAIL_REGULAR_EXPRESSION "FAILED ${case}"
      TIMEOUT ${MP_TEST_TIMEOUT} LABELS mpi RUN_SERIAL TRUE
      ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1;ASAN_OPTIONS=detect_leaks=0")
  endforeach()
endif()

# bench_mpi_pool starts itself under mpirun and the mpi4py peer from the
# source tree.
if(TARGET bench_mpi_pool)
  target_compile_definitions(bench_mpi_pool PRIVATE
    MP_HAVE_MPI=${MP_HAVE_MPI} MP_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  if(BUILD_TESTING)
    set_tests_properties(bench.bench_mpi_pool PROPERTIES
      RUN_SERIAL TRUE ENVIRONMENT
      "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;ASAN_OPTIONS=detect_leaks=0")
  endif()
endif()

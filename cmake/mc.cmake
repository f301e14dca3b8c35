# Small helpers so each folder declares its targets in one line each.

# mc_daemon(NAME SOURCES...): an executable linked against mc_lib.
function(mc_daemon name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE mc_lib)
  install(TARGETS ${name} RUNTIME DESTINATION bin)
endfunction()

# mc_unit_test(NAME SOURCES...): a unit test binary run by ctest.
# The binary prints "N passed, N failed" and exits non-zero on failure.
function(mc_unit_test name)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE mc_lib)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/lib)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS unit TIMEOUT 120)
endfunction()

# mc_embed_migrations(TARGET PREFIX DIR): compile DIR/*.sql into TARGET as
# PREFIX_migrations / PREFIX_migration_count (see lib/pg_migrate.h).
function(mc_embed_migrations target prefix dir)
  file(GLOB sqls ${dir}/*.sql)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${prefix}_migrations.c)
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DDIR=${dir} -DPREFIX=${prefix}
            -P ${PROJECT_SOURCE_DIR}/cmake/embed.cmake
    DEPENDS ${sqls} ${PROJECT_SOURCE_DIR}/cmake/embed.cmake
    COMMENT "embedding ${prefix} migrations")
  target_sources(${target} PRIVATE ${out})
endfunction()

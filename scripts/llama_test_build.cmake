# Read into llama.cpp's own CMake run by scripts/test_peers.py (CMAKE_PROJECT_INCLUDE), for the
# test servers' build only. The parts that carry requests rather than compute tokens (common's
# argument, chat and JSON-schema code; the HTTP server; the multimodal library the server links
# but the tests never send an image to) are compiled at -O1 and in unity batches (several source
# files per compiler run), which takes a fraction of the time. ggml and llama, where every token
# is computed, keep Release's -O3, so llama.cpp's speed in the tests is its real speed.
include_guard(GLOBAL)

function(tokenloop_quick_parts)
    foreach(target IN ITEMS llama-common mtmd server-context llama-server-impl cpp-httplib)
        if(TARGET ${target})
            target_compile_options(${target} PRIVATE -O1)
            set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE 16)
        endif()
    endforeach()
endfunction()

# Deferred to the end of the top-level CMakeLists.txt, once every target is defined.
cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL tokenloop_quick_parts)

# Included into llama.cpp's configure by scripts/test_peers.py (CMAKE_PROJECT_INCLUDE): the source
# files the tests never run hot are compiled without optimisation (-O0), which took 16% less
# compiler time for the whole build (337 core-seconds, not 401, on a Xeon). What runs for every
# token or request stays -O3: ggml, llama's core, sampling and tokenising, the server's request
# loop, its JSON and HTTP, and the chat parser run on each chunk. Cold: images and audio (mtmd),
# quantising, LoRA, argument parsing, downloads, presets, chat-template analysis, JSON-schema
# grammars, the router and tool calls. (src/models is left alone: a file given options of its own
# drops out of llama.cpp's unity batches, and those 150 files then took longer.)
include_guard(GLOBAL)

set(TOKENLOOP_COLD_CODE
    "^tools/mtmd/"
    "^src/llama-(quant|model-saver|adapter|kv-cache-dsv4)\\.cpp$"
    "^common/(arg|download|preset|hf-cache|json-schema-to-grammar|json-schema|debug|fit|console)\\.cpp$"
    "^common/(imatrix-loader|ngram-cache|ngram-map|llguidance|subproc|chat-diff-analyzer)\\.cpp$"
    "^common/chat-auto-parser-.*\\.cpp$"
    "^common/(jinja|parsers)/"
    "^tools/server/server-(models|tools|mcp|schema)\\.cpp$"
)
function(tokenloop_cold_code)
    foreach(target IN ITEMS llama llama-common mtmd server-context llama-server-impl)
        if(NOT TARGET ${target})
            continue()
        endif()
        get_target_property(folder ${target} SOURCE_DIR)
        get_target_property(sources ${target} SOURCES)
        set(cold "")
        foreach(source IN LISTS sources)
            get_filename_component(path "${source}" ABSOLUTE BASE_DIR "${folder}")
            file(RELATIVE_PATH relative "${CMAKE_SOURCE_DIR}" "${path}")
            foreach(pattern IN LISTS TOKENLOOP_COLD_CODE)
                if(relative MATCHES "${pattern}")
                    list(APPEND cold "${path}")
                    break()
                endif()
            endforeach()
        endforeach()
        list(LENGTH cold count)
        message(STATUS "tokenloop: ${count} cold source files of ${target} compiled at -O0")
        if(cold)
            set_source_files_properties(${cold} TARGET_DIRECTORY ${target} PROPERTIES COMPILE_OPTIONS "-O0")
        endif()
    endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL tokenloop_cold_code)

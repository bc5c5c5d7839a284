# Included into llama.cpp's configure by scripts/test_peers.py (CMAKE_PROJECT_INCLUDE): the source
# files the tests never run hot are compiled without optimisation (-O0), which took 18% less
# compiler time for the whole build (327 core-seconds, not 401, on a Xeon), with requests and
# start-up as fast. What runs for every token or request stays -O3: ggml, llama's core, its KV
# cache, sampling and tokenising, the server's request loop, its JSON, and the chat parser run on
# each chunk. Cold: images and audio (mtmd), quantising, LoRA, grammars, speculative decoding, the
# memories of other architectures (sliding windows, hybrid, recurrent), loading the model (once per
# start), argument parsing, downloads, presets, chat-template analysis, JSON-schema grammars, the
# router and tool calls, and the HTTP library (a request's parsing and writes: microseconds beside
# the model's milliseconds). (src/models is left alone: a file given options of its own drops out
# of llama.cpp's unity batches, and those 150 files then took longer.)
include_guard(GLOBAL)

set(TOKENLOOP_COLD_CODE
    "^tools/mtmd/"
    "^src/llama-(quant|model-saver|adapter|kv-cache-dsv4|model-loader|grammar)\\.cpp$"
    "^src/llama-(kv-cache-(iswa|dsa|dsa-iswa|msa)|memory-(hybrid|hybrid-iswa|hybrid-idx|recurrent))\\.cpp$"
    "^common/(arg|download|preset|hf-cache|json-schema-to-grammar|json-schema|debug|fit|console)\\.cpp$"
    "^common/(imatrix-loader|ngram-cache|ngram-map|llguidance|subproc|chat-diff-analyzer|speculative)\\.cpp$"
    "^common/chat-auto-parser-.*\\.cpp$"
    "^common/(jinja|parsers)/"
    "^tools/server/server-(models|tools|mcp|schema)\\.cpp$"
    "^vendor/cpp-httplib/"
)
function(tokenloop_cold_code)
    foreach(target IN ITEMS llama llama-common mtmd server-context llama-server-impl cpp-httplib)
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

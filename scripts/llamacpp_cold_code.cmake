# Included into llama.cpp's configure by scripts/test_peers.py (CMAKE_PROJECT_INCLUDE): each source
# file is optimised as far as the tests run it. Measured on a Xeon: 307 core-seconds of compiler for
# the whole build, not 401 with everything at -O3, with requests within 1% and start-up the same.
# - -O3 (llama.cpp's own level): what runs for every token: ggml, llama's core and KV cache,
#   sampling, tokenising.
# - -O1: what runs once per request or per streamed chunk (the server's request loop and JSON, the
#   chat parser): 20 core-seconds less than at -O3, a request 0.5% slower (4 ms of 0.82 s).
# - -O0: what the tests never run hot: images and audio (mtmd), quantising, LoRA, grammars,
#   speculative decoding, the memories of other architectures, loading the model (once per
#   start), argument parsing, downloads, presets, chat-template analysis, JSON-schema grammars,
#   the router, tool calls, and the HTTP library (a request's parsing and writes: microseconds).
# (src/models is left alone: a file given options of its own drops out of llama.cpp's unity
# batches, and those 150 files then took longer.)
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
set(TOKENLOOP_REQUEST_CODE  # what is left of these after the cold code
    "^tools/server/server"
    "^common/(common|chat|json|peg-parser|chat-peg-parser)\\.cpp$"
)

# The sources of `target` whose path (from llama.cpp's root) matches one of the patterns.
function(tokenloop_matching target patterns out)
    get_target_property(folder ${target} SOURCE_DIR)
    get_target_property(sources ${target} SOURCES)
    set(found "")
    foreach(source IN LISTS sources)
        get_filename_component(path "${source}" ABSOLUTE BASE_DIR "${folder}")
        file(RELATIVE_PATH relative "${CMAKE_SOURCE_DIR}" "${path}")
        foreach(pattern IN LISTS patterns)
            if(relative MATCHES "${pattern}")
                list(APPEND found "${path}")
                break()
            endif()
        endforeach()
    endforeach()
    set(${out} "${found}" PARENT_SCOPE)
endfunction()

function(tokenloop_cold_code)
    foreach(target IN ITEMS llama llama-common mtmd server-context llama-server-impl cpp-httplib)
        if(NOT TARGET ${target})
            continue()
        endif()
        tokenloop_matching(${target} "${TOKENLOOP_COLD_CODE}" cold)
        tokenloop_matching(${target} "${TOKENLOOP_REQUEST_CODE}" request)
        if(cold AND request)
            list(REMOVE_ITEM request ${cold})
        endif()
        list(LENGTH cold cold_count)
        list(LENGTH request request_count)
        message(STATUS "tokenloop: ${target}: ${cold_count} cold source files at -O0, ${request_count} per-request at -O1")
        if(cold)
            set_source_files_properties(${cold} TARGET_DIRECTORY ${target} PROPERTIES COMPILE_OPTIONS "-O0")
        endif()
        if(request)
            set_source_files_properties(${request} TARGET_DIRECTORY ${target} PROPERTIES COMPILE_OPTIONS "-O1")
        endif()
    endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL tokenloop_cold_code)

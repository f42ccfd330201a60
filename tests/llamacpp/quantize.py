#!/usr/bin/python3
"""llama-quantize, through the llama.cpp library node-llama-cpp ships (libllama's llama_model_quantize), so the tests
get GGUF files written by llama.cpp's own quantizer: its type choices per tensor (Q4_K_M's q6_K layers, fallbacks for
rows that are no multiple of 256) and its GGUF writer.

    /usr/bin/python3 quantize.py IN.gguf OUT.gguf FTYPE    FTYPE: q4_0 q8_0 q5_0 q4_K_S q4_K_M q5_K_S q5_K_M q6_K
Exits 0 with OUT written, else non-zero with llama.cpp's message on stderr.
"""
import ctypes, os, sys

# enum llama_ftype (llama.h): stable values.
FTYPES = {"q4_0": 2, "q8_0": 7, "q5_0": 8, "q5_1": 9, "q4_K_S": 14, "q4_K_M": 15, "q5_K_S": 16, "q5_K_M": 17, "q6_K": 18}

class Params(ctypes.Structure):
    # llama_model_quantize_params begins { int32_t nthread; enum llama_ftype ftype; ... }; the rest (pointers, bools,
    # enums) is left as llama_model_quantize_default_params() fills it. The struct is returned in memory (sret), so a
    # larger buffer than the real struct is safe.
    _fields_ = [("nthread", ctypes.c_int32), ("ftype", ctypes.c_int32), ("rest", ctypes.c_byte * 504)]

def main():
    if len(sys.argv) != 4 or sys.argv[3] not in FTYPES:
        print(__doc__, file=sys.stderr)
        return 2
    here = os.path.dirname(os.path.abspath(__file__))
    lib = ctypes.CDLL(os.path.join(here, "node_modules", "@node-llama-cpp", "linux-x64", "bins", "linux-x64", "libllama.v0.4.0.so"))
    lib.llama_backend_init.restype = None
    lib.llama_backend_init()
    lib.llama_model_quantize_default_params.restype = Params
    params = lib.llama_model_quantize_default_params()
    params.nthread = 2
    params.ftype = FTYPES[sys.argv[3]]
    lib.llama_model_quantize.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(Params)]
    lib.llama_model_quantize.restype = ctypes.c_uint32
    rc = lib.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(params))
    if rc != 0:
        print(f"llama_model_quantize failed ({rc})", file=sys.stderr)
    return 0 if rc == 0 else 1

if __name__ == "__main__":
    sys.exit(main())

/*
 * A stand-in for Windows' bcryptprimitives.dll, for running aio's Windows
 * test binaries under Wine 8.0 (`cargo xtask wine`).
 *
 * Rust's standard library (since 1.78) takes its random bytes (HashMap
 * seeds) from ProcessPrng, which it imports from bcryptprimitives.dll. Wine
 * 8.0 ships no such DLL, so every Rust binary fails to start (status
 * c0000135, DLL not found). This DLL exports that one function and fills the
 * buffer from RtlGenRandom (advapi32's SystemFunction036), which Wine has.
 * xtask builds it with mingw and copies it into the Wine prefix's system32.
 */
#include <windows.h>

/* RtlGenRandom: exported by advapi32 under this name. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/*
 * Windows documents ProcessPrng as always succeeding and returning TRUE; the
 * length is a SIZE_T, RtlGenRandom's a ULONG, hence the chunks.
 */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance;
    (void)reason;
    (void)reserved;
    return TRUE;
}

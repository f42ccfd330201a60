/* The native half of the NativeLibrary test plugin: a vendor plugin's driver library in miniature. Built by the
 * plugin's project with the system C compiler into runtimes/<rid>/native/ of the plugin's output. */
#define _GNU_SOURCE
#include <dlfcn.h>

/* Proves the call reached this code: returns a + b. */
int serving_test_native_add(int a, int b)
{
    return a + b;
}

/* The path this library was loaded from, as the dynamic loader recorded it (owned by the loader, valid while the
 * library stays loaded); "" when the loader cannot say. Tells the test which copy of the library the host loaded. */
const char *serving_test_native_path(void)
{
    Dl_info info;
    if (dladdr((const void *)&serving_test_native_path, &info) == 0 || info.dli_fname == 0)
        return "";
    return info.dli_fname;
}

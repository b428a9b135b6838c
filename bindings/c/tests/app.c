/* The pkg-config consumer check: a minimal program built with
 * cc app.c $(pkg-config --cflags --libs keygate) */
#include <keygate.h>
#include <stdio.h>

int main(void) {
    keygate_verifier *v = NULL;
    keygate_result r = keygate_verifier_new((const uint8_t *)"nope", 4, &v);
    printf("%s: %s\n", keygate_version(), keygate_result_message(r));
    return r == KEYGATE_RESULT_TRUNCATED && v == NULL ? 0 : 1;
}

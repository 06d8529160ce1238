/* examples/ds/json_out.c — JSON string escaping and option parsing for the ds program. */
#include "cli.h"

#include <string.h>

void json_strn(FILE *f, const char *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20)
                fprintf(f, "\\u%04x", c);
            else
                fputc(c, f);
        }
    }
    fputc('"', f);
}

void json_str(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    json_strn(f, s, strlen(s));
}

bool ds_cli_opt(int argc, char **argv, int *i, const char *shortname, const char *longname,
                const char **value)
{
    const char *a = argv[*i];
    if ((shortname && strcmp(a, shortname) == 0) || (longname && strcmp(a, longname) == 0)) {
        if (*i + 1 >= argc)
            return false;
        *value = argv[++*i];
        return true;
    }
    size_t ln = longname ? strlen(longname) : 0;
    if (longname && strncmp(a, longname, ln) == 0 && a[ln] == '=') {
        *value = a + ln + 1;
        return true;
    }
    return false;
}

int ds_cli_exit_code(ds_status s)
{
    if (s == DS_OK || s > 0)
        return 0;
    return 10 + (-(int)s);
}

int ds_cli_fail(const char *cmd, ds_status s)
{
    fprintf(stderr, "ds %s: %s: %s\n", cmd, ds_status_string(s), ds_last_error());
    return ds_cli_exit_code(s);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The state files dfud reads back at start-up: a job record (jobs/<id>.json) and the device registry
 * (devices.json). Either parses or is rejected with -EBADMSG; a record that parses must write back
 * to JSON that parses to the same job. */

#include <string.h>

#include "journal.h"
#include "registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *error = NULL;
        Job *j = NULL;
        int r;

        if (size > 1024 * 1024)
                return 0;
        r = job_parse_text((const char *) data, size, 64, &j, &error);
        if (r >= 0) {
                json_object *o = NULL;
                if (job_to_json(j, &o) >= 0) {
                        const char *s = json_object_to_json_string(o);
                        Job *k = NULL;
                        char *e2 = NULL;
                        if (job_parse_text(s, strlen(s), 64, &k, &e2) < 0)
                                __builtin_trap(); /* what we write, we must read */
                        if (k->id != j->id || k->state != j->state || k->n_verified != j->n_verified)
                                __builtin_trap();
                        job_free(k);
                        free(e2);
                        json_object_put(o);
                }
                job_free(j);
        } else if (r != -EBADMSG && r != -ENOMEM)
                __builtin_trap();
        free(error);

        json_tokener *tok = json_tokener_new();
        if (!tok)
                return 0;
        json_object *o = json_tokener_parse_ex(tok, (const char *) data, (int) size);
        json_tokener_free(tok);
        if (o) {
                Registry *reg;
                error = NULL;
                if (registry_new(&reg) >= 0) {
                        r = registry_from_json(reg, o, &error);
                        if (r < 0 && r != -EBADMSG && r != -ENOMEM)
                                __builtin_trap();
                        registry_free(reg);
                }
                free(error);
                json_object_put(o);
        }
        return 0;
}

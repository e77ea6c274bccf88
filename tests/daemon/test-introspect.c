/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* The contract (the org.dfud1 introspection XML in protocol/dbus) is what the live objects say: same
 * methods (argument types and directions), properties (type, access) and signals, nothing missing,
 * nothing extra. */

#include <string.h>
#include <unistd.h>

#include "bus-harness.h"
#include "dfud-dbus.h"
#include "test-util.h"

#define MAX_ITEMS 128

typedef struct Members {
        char *items[MAX_ITEMS];
        size_t n;
} Members;

static const char *attr(const char *tag, size_t len, const char *name, char *buf, size_t size) {
        char key[64];
        snprintf(key, sizeof key, " %s=\"", name);
        const char *p = memmem(tag, len, key, strlen(key));
        if (!p)
                return NULL;
        p += strlen(key);
        const char *e = memchr(p, '"', (size_t) (tag + len - p));
        if (!e || (size_t) (e - p) >= size)
                return NULL;
        memcpy(buf, p, (size_t) (e - p));
        buf[e - p] = 0;
        return buf;
}

static void add(Members *m, const char *s) {
        assert(m->n < MAX_ITEMS);
        m->items[m->n++] = strdup(s);
}

/* A normalized list: "method Update(in s, in h, in a{sv}, out t, out o)", "property Mode s read",
 * "signal JobRemoved(t, o, s)" for one interface of an introspection document. */
static void parse(const char *xml, const char *interface, Members *ret) {
        bool in_iface = false;
        char member[512] = "", name[128], type[64], dir[16], access[16];
        const char *p = xml;

        *ret = (Members) {};
        while ((p = strchr(p, '<'))) {
                const char *e = strchr(p, '>');
                assert(e);
                size_t len = (size_t) (e - p + 1);
                if (startswith(p, "<interface ")) {
                        in_iface = attr(p, len, "name", name, sizeof name) && streq(name, interface);
                } else if (startswith(p, "</interface>"))
                        in_iface = false;
                else if (in_iface && (startswith(p, "<method ") || startswith(p, "<signal "))) {
                        assert(attr(p, len, "name", name, sizeof name));
                        snprintf(member, sizeof member, "%s %s(", p[1] == 'm' ? "method" : "signal", name);
                        if (p[len - 2] == '/') { /* <method name="X"/> */
                                strcat(member, ")");
                                add(ret, member);
                                member[0] = 0;
                        }
                } else if (in_iface && startswith(p, "<arg ") && member[0]) {
                        assert(attr(p, len, "type", type, sizeof type));
                        bool first = member[strlen(member) - 1] == '(';
                        if (!first)
                                strcat(member, ", ");
                        if (startswith(member, "method ")) {
                                /* method args default to "in" */
                                if (!attr(p, len, "direction", dir, sizeof dir))
                                        strcpy(dir, "in");
                                strcat(member, dir);
                                strcat(member, " ");
                        }
                        strcat(member, type);
                } else if (in_iface && (startswith(p, "</method>") || startswith(p, "</signal>"))) {
                        strcat(member, ")");
                        add(ret, member);
                        member[0] = 0;
                } else if (in_iface && startswith(p, "<property ")) {
                        assert(attr(p, len, "name", name, sizeof name));
                        assert(attr(p, len, "type", type, sizeof type));
                        assert(attr(p, len, "access", access, sizeof access));
                        snprintf(member, sizeof member, "property %s %s %s", name, type, access);
                        add(ret, member);
                        member[0] = 0;
                }
                p = e + 1;
        }
}

static int cmp(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

static char *read_xml(const char *dir, const char *interface) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s.xml", dir, interface);
        FILE *f = fopen(path, "re");
        assert(f);
        char *buf = calloc(1, 65536);
        assert(buf);
        size_t n = fread(buf, 1, 65535, f);
        assert(n > 0);
        fclose(f);
        return buf;
}

static bool compare(const char *xml_dir, sd_bus *bus, const char *path, const char *interface) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *live_xml;
        Members live, contract;
        bool ok = true;

        assert(sd_bus_call_method(bus, NULL, path, "org.freedesktop.DBus.Introspectable", "Introspect",
                                  &error, &reply, NULL) >= 0);
        assert(sd_bus_message_read(reply, "s", &live_xml) > 0);
        parse(live_xml, interface, &live);
        char *file = read_xml(xml_dir, interface);
        parse(file, interface, &contract);
        free(file);
        sd_bus_message_unref(reply);

        assert(live.n > 0 && contract.n > 0);
        qsort(live.items, live.n, sizeof(char *), cmp);
        qsort(contract.items, contract.n, sizeof(char *), cmp);
        for (size_t i = 0, j = 0; i < live.n || j < contract.n;) {
                int c = i >= live.n ? 1 : j >= contract.n ? -1 : strcmp(live.items[i], contract.items[j]);
                if (c == 0) {
                        i++, j++;
                        continue;
                }
                ok = false;
                if (c < 0)
                        fprintf(stderr, "%s: live object has '%s', the XML does not\n", interface,
                                live.items[i++]);
                else
                        fprintf(stderr, "%s: the XML has '%s', the live object does not\n", interface,
                                contract.items[j++]);
        }
        fprintf(stderr, "%s: %zu members compared\n", interface, contract.n);
        for (size_t i = 0; i < live.n; i++)
                free(live.items[i]);
        for (size_t i = 0; i < contract.n; i++)
                free(contract.items[i]);
        return ok;
}

static void setup(BusHarness *h, void *userdata) {
        assert(write_text(h->state_dir, "devices.json",
                          "{\"version\": 1, \"devices\": [{\"id\": \"B\", \"port\": \"1-1\"}]}") == 0);
}

/* A finished job in the journal, so a Job object exists to introspect. */
static void plug(Manager *m, void *userdata) {
        Job *j;
        assert(job_new(42, "B", 10, &j) == 0);
        j->image_sha256 = strdup("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        j->image_size = 1;
        assert(job_fail(j, DFUD_ERROR_TIMEOUT, "test", 1) == 1);
        Job **n = realloc(m->jobs, (m->n_jobs + 1) * sizeof(Job *));
        assert(n);
        m->jobs = n;
        m->jobs[m->n_jobs++] = j;
}

int main(int argc, char **argv) {
        BusHarness h;
        bool ok = true;

        assert(argc == 2); /* protocol/dbus */
        bus_harness_start_full(&h, setup, plug, NULL);
        ok &= compare(argv[1], h.client, DFUD_OBJECT_ROOT, DFUD_INTERFACE_MANAGER);
        ok &= compare(argv[1], h.client, DFUD_OBJECT_DEVICE_PREFIX "/B", DFUD_INTERFACE_DEVICE);
        ok &= compare(argv[1], h.client, DFUD_OBJECT_JOB_PREFIX "/42", DFUD_INTERFACE_JOB);
        bus_harness_stop(&h);
        return ok ? 0 : 1;
}

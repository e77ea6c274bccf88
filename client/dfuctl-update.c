/* SPDX-License-Identifier: LGPL-2.1-or-later */

/* dfuctl update: the updatectl pattern. Subscribe to JobRemoved first, then call Update, then follow the
 * job's PropertiesChanged until JobRemoved says how it ended. Ctrl-C cancels the job and still waits for
 * its end, so the exit code always tells what happened to the device. */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <systemd/sd-event.h>

#include "bus-util.h"
#include "dfud-dbus.h"
#include "dfuctl.h"
#include "format.h"

/* Polkit may ask for a password before Update returns. */
#define UPDATE_CALL_TIMEOUT_USEC (300 * USEC_PER_SEC)
#define REDRAW_INTERVAL_USEC (100 * USEC_PER_MSEC)

typedef struct Update {
        sd_bus *bus;
        sd_event *event;
        const Args *args;
        const char *device;

        uint64_t id;
        char *job_path;

        /* the job as last seen */
        char *state;
        uint32_t progress;
        uint64_t bytes_done;
        uint64_t bytes_total;
        char *error_name;
        char *error_message;

        char *result; /* JobRemoved's */
        bool done;
        bool cancel_requested;
        bool cancel_sent;
        bool daemon_gone;
        bool refetching; /* after dfud came back */
        int exit_code;

        bool tty;
        unsigned columns;
        bool bar_shown;
        uint64_t started_usec;
        uint64_t last_draw_usec;
        RateMeter rate_meter;
        double rate;
        ProgressPlain plain;
} Update;

static void update_done(Update *u) {
        free(u->job_path);
        free(u->state);
        free(u->error_name);
        free(u->error_message);
        free(u->result);
}

static int set_string(char **p, const char *v) {
        char *c = strdup(v ?: "");

        if (!c)
                return -ENOMEM;
        free(*p);
        *p = c;
        return 0;
}

static unsigned terminal_columns(void) {
        struct winsize ws = {};
        const char *e = getenv("COLUMNS");

        if (e && atoi(e) > 0)
                return (unsigned) atoi(e);
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) >= 0 && ws.ws_col > 0)
                return ws.ws_col;
        return 80;
}

static void update_clear_bar(Update *u) {
        if (!u->bar_shown)
                return;
        fputs("\r\033[K", stdout);
        fflush(stdout);
        u->bar_shown = false;
}

static void update_render(Update *u, bool force) {
        unsigned percent;
        char line[512];
        uint64_t now;

        if (u->args->json || !u->state)
                return;

        now = now_usec();
        percent = progress_percent(u->bytes_done, u->bytes_total, u->progress);
        if (u->tty) {
                if (!force && u->bar_shown && now - u->last_draw_usec < REDRAW_INTERVAL_USEC)
                        return;
                u->last_draw_usec = now;
                format_progress_bar(line, sizeof(line), u->columns, u->state, percent, u->bytes_done,
                                    u->bytes_total, u->rate);
                printf("\r%s\033[K", line);
                fflush(stdout);
                u->bar_shown = true;
        } else if (progress_plain_step(&u->plain, u->state, percent)) {
                printf("%s\n", format_progress_line(line, sizeof(line), u->state, percent, u->bytes_done,
                                                    u->bytes_total, u->rate));
                fflush(stdout);
        }
}

static void update_exit(Update *u, int exit_code) {
        u->done = true;
        u->exit_code = exit_code;
        (void) sd_event_exit(u->event, exit_code);
}

/* Reads the Job properties dfuctl follows out of an a{sv}; others are skipped. */
static int update_apply_properties(Update *u, sd_bus_message *m) {
        bool state_changed = false;
        int r;

        r = sd_bus_message_enter_container(m, SD_BUS_TYPE_ARRAY, "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, SD_BUS_TYPE_DICT_ENTRY, "sv")) > 0) {
                const char *name, *s;

                r = sd_bus_message_read(m, "s", &name);
                if (r < 0)
                        return r;

                if (streq(name, "State")) {
                        r = sd_bus_message_read(m, "v", "s", &s);
                        if (r >= 0 && !streq_ptr(u->state, s)) {
                                state_changed = true;
                                r = set_string(&u->state, s);
                        }
                } else if (streq(name, "Progress"))
                        r = sd_bus_message_read(m, "v", "u", &u->progress);
                else if (streq(name, "BytesDone"))
                        r = sd_bus_message_read(m, "v", "t", &u->bytes_done);
                else if (streq(name, "BytesTotal"))
                        r = sd_bus_message_read(m, "v", "t", &u->bytes_total);
                else if (streq(name, "ErrorName")) {
                        r = sd_bus_message_read(m, "v", "s", &s);
                        if (r >= 0)
                                r = set_string(&u->error_name, s);
                } else if (streq(name, "ErrorMessage")) {
                        r = sd_bus_message_read(m, "v", "s", &s);
                        if (r >= 0)
                                r = set_string(&u->error_message, s);
                } else
                        r = sd_bus_message_skip(m, "v");
                if (r < 0)
                        return r;

                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;

        /* each phase has its own speed, and may restart the byte counter */
        if (state_changed)
                rate_meter_reset(&u->rate_meter);
        u->rate = rate_meter_update(&u->rate_meter, now_usec(), u->bytes_done);
        update_render(u, state_changed);
        return 0;
}

static int on_job_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Update *u = userdata;
        const char *iface;
        int r;

        r = sd_bus_message_read(m, "s", &iface);
        if (r < 0 || !streq(iface, DFUD_INTERFACE_JOB))
                return 0;
        r = update_apply_properties(u, m);
        if (r < 0)
                fprintf(stderr, "dfuctl: Failed to parse job properties, ignoring: %s\n", strerror(-r));
        return 0;
}

static int on_job_get_all(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Update *u = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        if (!e) {
                (void) update_apply_properties(u, m);
                return 0;
        }
        /* Right after Update an error means the job has already ended and JobRemoved tells the rest; after
         * a dfud restart it means the job did not survive. */
        if (u->refetching) {
                update_clear_bar(u);
                fprintf(stderr, "dfuctl: dfud came back without job %" PRIu64 ": %s (%s)\n", u->id,
                        e->message ?: e->name, e->name);
                update_exit(u, DFUCTL_EXIT_FAILURE);
        }
        return 0;
}

static int update_fetch_job(Update *u) {
        return sd_bus_call_method_async(u->bus, NULL, DFUD_BUS_NAME, u->job_path,
                                        "org.freedesktop.DBus.Properties", "GetAll", on_job_get_all, u, "s",
                                        DFUD_INTERFACE_JOB);
}

static int on_cancel_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        const sd_bus_error *e = sd_bus_message_get_error(m);

        /* a job that has just ended cannot be cancelled; its JobRemoved is on the way */
        if (e && !sd_bus_error_has_names(e, SD_BUS_ERROR_UNKNOWN_OBJECT, DFUD_ERROR_JOB_NOT_FOUND))
                log_bus_error(e, -EIO, "Failed to cancel the job");
        return 0;
}

static void update_send_cancel(Update *u) {
        int r;

        if (u->cancel_sent || !u->job_path)
                return;
        u->cancel_sent = true;
        r = sd_bus_call_method_async(u->bus, NULL, DFUD_BUS_NAME, u->job_path, DFUD_INTERFACE_JOB, "Cancel",
                                     on_cancel_reply, u, NULL);
        if (r < 0)
                log_bus_error(NULL, r, "Failed to cancel job %" PRIu64, u->id);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Update *u = userdata;

        if (u->done)
                return 0;
        update_clear_bar(u);
        if (u->cancel_requested) {
                fprintf(stderr, "dfuctl: Not waiting for job %" PRIu64 " any more.\n", u->id);
                update_exit(u, DFUCTL_EXIT_FAILURE);
                return 0;
        }
        u->cancel_requested = true;
        if (u->job_path && !u->args->json)
                fprintf(stderr, "Cancelling job %" PRIu64 "... (press Ctrl-C again to stop waiting)\n",
                        u->id);
        update_send_cancel(u);
        return 0;
}

static bool result_is_success(const char *result) {
        return streq_ptr(result, "succeeded") || streq_ptr(result, "done") || streq_ptr(result, "success");
}

/* After JobRemoved the job object may already be gone; it is still asked for ErrorName/ErrorMessage when
 * its PropertiesChanged did not carry them. */
static void update_fetch_error(Update *u) {
        _cleanup_bus_error_ sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;

        if (u->error_name && *u->error_name)
                return;
        if (sd_bus_call_method(u->bus, DFUD_BUS_NAME, u->job_path, "org.freedesktop.DBus.Properties",
                               "GetAll", &error, &reply, "s", DFUD_INTERFACE_JOB) >= 0)
                (void) update_apply_properties(u, reply);
}

static void update_print_result(Update *u) {
        bool ok = result_is_success(u->result);
        char d[32], b[32];

        if (!ok)
                update_fetch_error(u);
        update_clear_bar(u);

        if (u->args->json) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();

                if (!o)
                        return;
                json_object_object_add(o, "id", json_object_new_uint64(u->id));
                json_object_object_add(o, "object_path", json_object_new_string(u->job_path));
                json_object_object_add(o, "device", json_object_new_string(u->device));
                json_object_object_add(o, "result", json_object_new_string(u->result ?: ""));
                json_object_object_add(o, "error_name", json_object_new_string(u->error_name ?: ""));
                json_object_object_add(o, "error_message", json_object_new_string(u->error_message ?: ""));
                json_object_object_add(o, "bytes_done", json_object_new_uint64(u->bytes_done));
                json_object_object_add(o, "bytes_total", json_object_new_uint64(u->bytes_total));
                json_object_object_add(o, "duration_usec",
                                       json_object_new_uint64(now_usec() - u->started_usec));
                json_print(o, stdout);
        }

        if (ok) {
                if (!u->args->json) {
                        format_duration(d, sizeof(d), now_usec() - u->started_usec);
                        if (u->bytes_total > 0)
                                printf("Job %" PRIu64 " succeeded: %s updated, %s in %s.\n", u->id,
                                       u->device, format_bytes(b, sizeof(b), u->bytes_total), d);
                        else
                                printf("Job %" PRIu64 " succeeded: %s updated in %s.\n", u->id, u->device,
                                       d);
                }
                return;
        }

        if (u->error_name && *u->error_name)
                fprintf(stderr, "dfuctl: Job %" PRIu64 " %s: %s (%s)\n", u->id, u->result ?: "failed",
                        u->error_message && *u->error_message ? u->error_message : u->error_name,
                        u->error_name);
        else
                fprintf(stderr, "dfuctl: Job %" PRIu64 " ended: %s\n", u->id, u->result ?: "failed");
}

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Update *u = userdata;
        const char *path, *result;
        uint64_t id;
        int r;

        r = sd_bus_message_read(m, "tos", &id, &path, &result);
        if (r < 0) {
                fprintf(stderr, "dfuctl: Failed to parse JobRemoved, ignoring: %s\n", strerror(-r));
                return 0;
        }
        /* the Update reply always comes first (same sender, ordered): other jobs are not ours */
        if (!u->job_path || (id != u->id && !streq(path, u->job_path)))
                return 0;

        if (set_string(&u->result, result) < 0)
                return -ENOMEM;
        update_print_result(u);
        update_exit(u, result_is_success(result) ? 0 : DFUCTL_EXIT_FAILURE);
        return 0;
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Update *u = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || !u->job_path)
                return 0;

        if (!*new_owner) {
                /* dfud journals its jobs: after a crash or restart it resumes this one and still sends
                 * JobRemoved, so keep waiting */
                u->daemon_gone = true;
                update_clear_bar(u);
                if (!u->args->json)
                        fprintf(stderr,
                                "dfuctl: dfud went away; waiting for it to resume job %" PRIu64 "...\n",
                                u->id);
        } else if (u->daemon_gone) {
                u->daemon_gone = false;
                u->refetching = true;
                (void) update_fetch_job(u);
        }
        return 0;
}

static int on_update_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Update *u = userdata;
        const sd_bus_error *e;
        const char *path;
        int r;

        e = sd_bus_message_get_error(m);
        if (e) {
                log_bus_error(e, -EIO, "Failed to update '%s'", u->device);
                update_exit(u, DFUCTL_EXIT_FAILURE);
                return 0;
        }

        r = sd_bus_message_read(m, "to", &u->id, &path);
        if (r >= 0)
                r = set_string(&u->job_path, path);
        if (r < 0) {
                log_bus_error(NULL, r, "Failed to parse the Update() reply");
                update_exit(u, DFUCTL_EXIT_FAILURE);
                return 0;
        }

        if (!u->args->wait) {
                if (u->args->json) {
                        _cleanup_(json_object_putp) json_object *o = json_object_new_object();

                        if (o) {
                                json_object_object_add(o, "id", json_object_new_uint64(u->id));
                                json_object_object_add(o, "object_path",
                                                       json_object_new_string(u->job_path));
                                json_print(o, stdout);
                        }
                } else
                        printf("Job %" PRIu64 " queued (%s).\n", u->id, u->job_path);
                update_exit(u, 0);
                return 0;
        }

        if (!u->args->json)
                printf("Job %" PRIu64 ": updating %s.\n", u->id, u->device);
        fflush(stdout);

        /* subscribe before asking, so no change falls between the two */
        r = sd_bus_match_signal_async(u->bus, NULL, DFUD_BUS_NAME, u->job_path,
                                      "org.freedesktop.DBus.Properties", "PropertiesChanged",
                                      on_job_properties_changed, NULL, u);
        if (r >= 0)
                r = update_fetch_job(u);
        if (r < 0) {
                log_bus_error(NULL, r, "Failed to follow job %" PRIu64, u->id);
                update_exit(u, DFUCTL_EXIT_FAILURE);
                return 0;
        }

        if (u->cancel_requested) {
                if (!u->args->json)
                        fprintf(stderr, "Cancelling job %" PRIu64 "...\n", u->id);
                update_send_cancel(u);
        }
        return 0;
}

static int append_options(sd_bus_message *m, const Args *args) {
        int r;

        r = sd_bus_message_open_container(m, SD_BUS_TYPE_ARRAY, "{sv}");
        if (r < 0)
                return r;
        /* only what the user chose: the daemon owns the defaults */
        if (args->have_address) {
                r = sd_bus_message_append(m, "{sv}", DFUD_OPTION_ADDRESS, "t", args->address);
                if (r < 0)
                        return r;
        }
        if (args->format) {
                r = sd_bus_message_append(m, "{sv}", DFUD_OPTION_FORMAT, "s", args->format);
                if (r < 0)
                        return r;
        }
        if (!args->verify) {
                r = sd_bus_message_append(m, "{sv}", DFUD_OPTION_VERIFY, "b", 0);
                if (r < 0)
                        return r;
        }
        if (!args->incremental) {
                r = sd_bus_message_append(m, "{sv}", DFUD_OPTION_INCREMENTAL, "b", 0);
                if (r < 0)
                        return r;
        }
        if (args->allow_downgrade) {
                r = sd_bus_message_append(m, "{sv}", DFUD_OPTION_ALLOW_DOWNGRADE, "b", 1);
                if (r < 0)
                        return r;
        }
        return sd_bus_message_close_container(m);
}

int verb_update(sd_bus *bus, const Args *args) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *file = args->argv[1];
        sd_event *event = NULL;
        struct stat st;
        Update u = {
                .bus = bus,
                .args = args,
                .device = args->argv[0],
                .exit_code = DFUCTL_EXIT_FAILURE,
                /* TERM=dumb: a serial console or log that cannot redraw a line */
                .tty = isatty(STDOUT_FILENO) && !streq_ptr(getenv("TERM"), "dumb"),
                .rate = -1,
                .started_usec = now_usec(),
        };
        int r;

        progress_plain_reset(&u.plain);
        u.columns = terminal_columns();

        /* dfuctl opens the image with the caller's rights and hands dfud the descriptor */
        fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                log_bus_error(NULL, -errno, "Failed to open '%s'", file);
                return DFUCTL_EXIT_FAILURE;
        }
        if (fstat(fd, &st) < 0) {
                log_bus_error(NULL, -errno, "Failed to stat '%s'", file);
                return DFUCTL_EXIT_FAILURE;
        }
        if (S_ISDIR(st.st_mode)) {
                log_bus_error(NULL, -EISDIR, "Cannot use '%s'", file);
                return DFUCTL_EXIT_FAILURE;
        }

        r = sd_event_default(&event);
        if (r < 0)
                goto fail;
        u.event = event;
        r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                goto fail;
        (void) sd_bus_set_exit_on_disconnect(bus, true);
        r = event_add_signals(event, on_signal, &u);
        if (r < 0)
                goto fail;

        /* Before Update: JobRemoved for a short job may be sent right after the reply. */
        r = sd_bus_match_signal_async(bus, NULL, DFUD_BUS_NAME, DFUD_OBJECT_ROOT, DFUD_INTERFACE_MANAGER,
                                      "JobRemoved", on_job_removed, NULL, &u);
        if (r < 0)
                goto fail;
        r = sd_bus_add_match_async(bus, NULL, MATCH_DFUD_OWNER, on_name_owner_changed, NULL, &u);
        if (r < 0)
                goto fail;

        r = sd_bus_message_new_method_call(bus, &call, DFUD_BUS_NAME, DFUD_OBJECT_ROOT,
                                           DFUD_INTERFACE_MANAGER, "Update");
        if (r >= 0)
                r = sd_bus_message_append(call, "sh", u.device, fd);
        if (r >= 0)
                r = append_options(call, args);
        if (r >= 0)
                r = sd_bus_call_async(bus, NULL, call, on_update_reply, &u, UPDATE_CALL_TIMEOUT_USEC);
        if (r < 0)
                goto fail;
        /* the message holds its own copy of the descriptor */
        fd = safe_close(fd);

        r = sd_event_loop(event);
        if (r < 0)
                goto fail;
        if (!u.done) {
                update_clear_bar(&u);
                fprintf(stderr, "dfuctl: Lost the connection to the bus.\n");
        }
        r = u.exit_code;
        goto out;

fail:
        update_clear_bar(&u);
        log_bus_error(NULL, r, "Failed to update '%s'", u.device);
        r = DFUCTL_EXIT_FAILURE;
out:
        (void) sd_bus_detach_event(bus);
        sd_event_unref(event);
        update_done(&u);
        return r;
}

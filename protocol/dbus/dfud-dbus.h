/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The D-Bus contract shared by dfud and dfuctl: names exist once, here. The interfaces themselves
 * are described by org.dfud1.*.xml beside this file, which the tests compare with the live objects. */

#define DFUD_BUS_NAME "org.dfud1"
#define DFUD_OBJECT_ROOT "/org/dfud1"
#define DFUD_OBJECT_DEVICE_PREFIX "/org/dfud1/device"
#define DFUD_OBJECT_JOB_PREFIX "/org/dfud1/job"
#define DFUD_INTERFACE_MANAGER "org.dfud1.Manager"
#define DFUD_INTERFACE_DEVICE "org.dfud1.Device"
#define DFUD_INTERFACE_JOB "org.dfud1.Job"

#define DFUD_ERROR_DEVICE_NOT_FOUND "org.dfud1.Error.DeviceNotFound"
#define DFUD_ERROR_JOB_NOT_FOUND "org.dfud1.Error.JobNotFound"
#define DFUD_ERROR_BUSY "org.dfud1.Error.Busy"
#define DFUD_ERROR_INVALID_IMAGE "org.dfud1.Error.InvalidImage"
#define DFUD_ERROR_ACCESS_DENIED "org.dfud1.Error.AccessDenied"
#define DFUD_ERROR_NOT_SUPPORTED "org.dfud1.Error.NotSupported"
#define DFUD_ERROR_TIMEOUT "org.dfud1.Error.Timeout"
#define DFUD_ERROR_DEVICE_GONE "org.dfud1.Error.DeviceGone"
#define DFUD_ERROR_PROTOCOL "org.dfud1.Error.Protocol"
#define DFUD_ERROR_CANCELLED "org.dfud1.Error.Cancelled"
#define DFUD_ERROR_VERIFY_FAILED "org.dfud1.Error.VerifyFailed"
#define DFUD_ERROR_DOWNGRADE "org.dfud1.Error.Downgrade"
#define DFUD_ERROR_TOO_MANY_JOBS "org.dfud1.Error.TooManyJobs"

/* polkit actions */
#define DFUD_POLKIT_ACTION_UPDATE "org.dfud1.update"
#define DFUD_POLKIT_ACTION_MANAGE "org.dfud1.manage"

/* Update() options (a{sv}) */
#define DFUD_OPTION_ADDRESS "address"                 /* t: base address for raw .bin */
#define DFUD_OPTION_FORMAT "format"                   /* s: auto|dfuse|dfu|ihex|elf|bin */
#define DFUD_OPTION_VERIFY "verify"                   /* b: default true */
#define DFUD_OPTION_INCREMENTAL "incremental"         /* b: default true where the device can upload */
#define DFUD_OPTION_ALLOW_DOWNGRADE "allow-downgrade" /* b: default false */
#define DFUD_OPTION_ALLOW_PROTECTED "allow-protected" /* b: option bytes / OTP, default false */
#define DFUD_OPTION_LEAVE "leave"                     /* b: default true */

/* Job.State values */
#define DFUD_JOB_STATES                                                                               \
        "queued", "waiting-for-device", "entering-bootloader", "reading", "erasing", "writing",      \
        "verifying", "leaving", "waiting-for-application", "succeeded", "failed", "cancelled"

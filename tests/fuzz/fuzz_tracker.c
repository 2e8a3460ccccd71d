/* fuzz_tracker.c - the resource tracker's untrusted text: state files
 * ("/dev/shm/mp-tracker.<pid>", which any program of the user can write)
 * and the datagrams members send it ("R ..." and "U ..."). The parsers are
 * static in src/resource_tracker.c, so this target compiles that file
 * itself, with its external functions renamed so that they do not clash
 * with the library's copies.
 *
 * What is checked: every entry the parser accepts has a pid in range and a
 * name that is a valid segment name (NUL-terminated, no '/', within
 * MP_SHARED_MEMORY_NAME_MAX); the header parser stays within the text;
 * the tracker's table stays within its bounds. Nothing here unlinks a
 * segment: clean-up acts on segments found by inode, and a fuzzer that
 * learns inodes from the comparisons could reach other programs' segments.
 *
 * Input: selector (1 byte); even: a state file body (its pid from the
 * next 2 bytes), odd: a sequence of datagrams separated by '\n'. */
#define mp__tracker_register fz_tracker_register
#define mp__tracker_create fz_tracker_create
#define mp__tracker_unregister fz_tracker_unregister
#define mp__tracker_forget fz_tracker_forget
#define mp__tracker_link fz_tracker_link
#define mp_resource_tracker_list fz_resource_tracker_list
#define mp_resource_tracker_pid fz_resource_tracker_pid
#define mp_resource_tracker_remove_dead fz_resource_tracker_remove_dead
#include "../../src/resource_tracker.c"

#include "fuzz_common.h"

static int seen;

static int check_entry(const entry *e, const char *line, size_t line_len,
                       void *arg) {
  const char *end = arg;
  fz_check(line + line_len <= end);
  fz_check(e->pid > 0);
  size_t n = strnlen(e->name, sizeof e->name);
  fz_check(n > 0 && n < sizeof e->name && n <= NAME_MAX_BYTES);
  fz_check(strchr(e->name, '/') == NULL);
  /* What mp-shm list does with an entry: look, never change. */
  (void)mp__os_process_alive(e->pid, e->start);
  seen++;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_reader r = {data, size};
  uint8_t sel = fz_u8(&r);
  if ((sel & 1) == 0) {
    state_header h = {.pid = 1 + fz_u16(&r)};
    /* A private copy, so that a read past the text is an ASan report. */
    char *text = malloc(r.left ? r.left : 1);
    memcpy(text, r.p, r.left);
    const char *end = text + r.left;
    const char *body = parse_header(text, r.left, &h);
    fz_check(body >= text && body <= end);
    for_each_entry(body, end, check_entry, (void *)end);
    char fname[40];
    snprintf(fname, sizeof fname, "mp-tracker.%u", (unsigned)fz_u16(&r));
    (void)state_file_pid(fname);
    free(text);
    return 0;
  }

  /* Datagrams to a tracker whose state file is ours alone. */
  tracker tr;
  memset(&tr, 0, sizeof tr);
  tr.pid = getpid();
  snprintf(tr.state_name, sizeof tr.state_name, "fz%d-tracker", (int)getpid());
  const char *p = (const char *)r.p, *end = p + r.left;
  for (int i = 0; p < end && i < 64; i++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t len = (size_t)((nl ? nl : end) - p);
    if (len < MSG_MAX) {
      char msg[MSG_MAX];
      memcpy(msg, p, len);
      tracker_handle(&tr, msg, len);
      fz_check(tr.n <= tr.cap);
      for (size_t k = 0; k < tr.n; k++)
        fz_check(strnlen(tr.v[k].name, sizeof tr.v[k].name) <
                 sizeof tr.v[k].name);
    }
    p = nl ? nl + 1 : end;
  }
  free(tr.v);
  fz_shm_sweep(tr.state_name, NULL);
  return 0;
}

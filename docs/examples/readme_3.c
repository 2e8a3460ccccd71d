/* readme_3.c - code that is not thread-safe, run in parallel: strtok keeps
 * hidden global state, so two threads must not call it at once; two
 * processes may. */
#include <stdio.h>
#include <string.h>

#include <multiproc.h>

static int count_words(void *arg) {
  char *text = arg; /* fork: the child's own copy */
  int n = 0;
  for (char *w = strtok(text, " "); w != NULL; w = strtok(NULL, " "))
    n++;
  return n; /* small counts travel back as the exit status */
}

int main(void) {
  char a[] = "the quick brown fox", b[] = "jumps over the lazy dog";
  char *texts[2] = {a, b};
  mp_process *p[2];
  for (int i = 0; i < 2; i++)
    if (mp_process_new(&p[i], count_words, texts[i], NULL) != 0 ||
        mp_process_start(p[i]) != 0)
      return 1;
  for (int i = 0; i < 2; i++) {
    int words = -1;
    if (mp_process_join(p[i], MP_FOREVER) == 0)
      mp_process_exitcode(p[i], &words);
    printf("text %d: %d words\n", i, words);
    mp_process_free(p[i]);
  }
  return 0;
}

/* errors_2.c - MP_ERRNO_MAP builds tables of your own: here, a list of
 * every code with its value and description. */
#include <stdio.h>

#include <multiproc.h>

int main(void) {
#define PRINT_CODE(name, value, text)                                        \
  printf("%-20s %6d  %s\n", "MP_" #name, value, text);
  MP_ERRNO_MAP(PRINT_CODE)
#undef PRINT_CODE
  return 0;
}

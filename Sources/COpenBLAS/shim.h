// OpenBLAS's cblas.h also declares openblas_set_num_threads / openblas_get_config.
#include <cblas.h>

// OpenBLAS's cblas.h also declares openblas_set_num_threads / openblas_get_config.
#include <cblas.h>

// LAPACK routines OpenBLAS exports (Fortran calling convention, column-major). Declared here
// because Debian's OpenBLAS is built without LAPACKE.
void dposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *lda, double *b,
            const int *ldb, int *info);
void dgesv_(const int *n, const int *nrhs, double *a, const int *lda, int *ipiv, double *b, const int *ldb,
            int *info);
void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
             double *work, const int *lwork, int *iwork, const int *liwork, int *info);

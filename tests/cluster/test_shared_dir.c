/* test_shared_dir.c - cluster_check_shared_dir with per-rank paths, standing in for node-local
 * disks: `same` (every rank the same folder: passes, at 1, 2 and 4 ranks) and `split` (odd ranks
 * are given another folder, which exists but where rank 0's marker is not: every rank is refused
 * with a message naming the odd ranks and their host). Both also check that no marker is left
 * behind and that a folder rank 0 cannot write to gives CLUSTER_ERR_IO on every rank. */
#include "check.h"
#include "cluster.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { PATH_BYTES = 512 };

/* Files in dir whose name starts with .longctx-shared- */
static int n_markers(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        n += strncmp(e->d_name, ".longctx-shared-", 16) == 0;
    if (d)
        closedir(d);
    return d ? n : -1;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, n_ranks;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &n_ranks);
    cluster_log_setup("test_shared_dir", rank, n_ranks, CLUSTER_LOG_INFO);
    const int split = argc > 1 && !strcmp(argv[1], "split");

    /* rank 0's temporary folder, with a sibling folder "other" inside it */
    char base[PATH_BYTES] = "", other[PATH_BYTES];
    if (rank == 0) {
        const char *tmp = getenv("TMPDIR");
        snprintf(base, sizeof base, "%s/longctx-shared-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(base))
            base[0] = '\0';
    }
    MPI_Bcast(base, (int)sizeof base, MPI_CHAR, 0, MPI_COMM_WORLD);
    CHECK(base[0] != '\0');
    snprintf(other, sizeof other, "%s/other", base);
    if (rank == 0)
        CHECK(mkdir(other, 0755) == 0);
    MPI_Barrier(MPI_COMM_WORLD);

    cluster_slurm_info info;
    cluster_slurm_info_get(&info);
    char err[1024];
    const char *mine = split && rank % 2 == 1 ? other : base;
    int st = cluster_check_shared_dir(MPI_COMM_WORLD, mine, err, sizeof err);
    if (!split || n_ranks == 1) {
        CHECK_EQ_INT(st, CLUSTER_OK);
        CHECK(err[0] == '\0');
        /* again: a fresh marker each time */
        CHECK_EQ_INT(cluster_check_shared_dir(MPI_COMM_WORLD, mine, err, sizeof err), CLUSTER_OK);
    } else {
        CHECK_EQ_INT(st, CLUSTER_ERR_NOT_SHARED);
        char want[128];
        int n_blind = n_ranks / 2;
        snprintf(want, sizeof want, "%d of %d ranks (rank 1 on %s", n_blind, n_ranks,
                 info.node_name);
        CHECK(strstr(err, want) != NULL);
        CHECK(strstr(err, "shared file system") != NULL);
        CHECK(strstr(err, base) != NULL);
        CHECK(strstr(err, "(rank 0 on") == NULL && strstr(err, ", rank 0 on") == NULL);
        CHECK(strstr(err, "that rank 0 on") != NULL);
        if (rank == 0)
            printf("refused: %s\n", err);
        if (n_ranks >= 4)
            CHECK(strstr(err, "rank 3 on") != NULL && strstr(err, "rank 2 on") == NULL);
        if (st != CLUSTER_ERR_NOT_SHARED || !strstr(err, want))
            fprintf(stderr, "rank %d: %s: %s\n", rank, cluster_strerror(st), err);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        CHECK_EQ_INT(n_markers(base), 0);
        CHECK_EQ_INT(n_markers(other), 0);
    }

    /* rank 0 cannot write its marker: every rank learns why */
    char missing[PATH_BYTES + 16];
    snprintf(missing, sizeof missing, "%s/missing", base);
    st = cluster_check_shared_dir(MPI_COMM_WORLD, missing, err, sizeof err);
    CHECK_EQ_INT(st, CLUSTER_ERR_IO);
    CHECK(strstr(err, missing) != NULL && strstr(err, "No such file") != NULL);

    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        rmdir(other);
        CHECK(rmdir(base) == 0); /* empty: nothing left behind */
    }
    int n_failed_all = 0;
    MPI_Allreduce(&check_n_failed, &n_failed_all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    char name[64];
    snprintf(name, sizeof(name), "test_shared_dir[%d/%d]", rank, n_ranks);
    int rc = check_exit(name);
    MPI_Finalize();
    return n_failed_all ? 1 : rc;
}

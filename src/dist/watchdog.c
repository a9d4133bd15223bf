/* watchdog.c - waits that give up on a lost peer (dist.h, ra_waitall).
 *
 * A launcher notices a rank that exits (mpirun and srun end the job at once),
 * but not one that hangs, is stopped, or sits behind a dead link: every other
 * rank would block in MPI_Waitall forever. So waits poll with MPI_Testall and,
 * after run.timeout seconds without completing, ask every rank "are you
 * there?" on a private communicator: waiting ranks answer from their poll
 * loops, so the ranks that do not answer within a few seconds are the lost
 * ones (the rank a ring wait blames may itself only be waiting). The message
 * names them, and the job is aborted. A rank in long work outside any wait
 * (rank 0 writing a checkpoint while the others wait for it) answers from
 * that work's loop (ra_watchdog_working) that it is working: then nobody is
 * lost and the job is not deadlocked, so the asking rank waits another
 * run.timeout instead of ending the job. When all answer "waiting", the
 * asking rank still polls its own wait for the answer window before it
 * ends the job: the late rank may have just joined that very wait. */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ringattn/dist.h"
#include "ringattn/fileio.h"
#include "ringattn/mem.h"

static double g_timeout = RA_DEFAULT_PEER_TIMEOUT;
static MPI_Comm g_wd = MPI_COMM_NULL; /* private channel for "are you there?" */

enum { TAG_ASK = 1, TAG_ANSWER = 2 };
/* the payloads: a question, and the two answers */
static const int g_ask = 1, g_waiting = 1, g_working = 2;
#define ANSWER_SECONDS 3.0 /* how long a timed-out rank waits for answers */

static int g_rest; /* ra_set_wait_rest */

void ra_set_peer_timeout(double seconds) { g_timeout = seconds; }
double ra_peer_timeout(void) { return g_timeout; }
void ra_set_wait_rest(int on) { g_rest = on; }

/* Between the polls of a wait that has lasted `waited` seconds. A rank with
 * a core of its own yields and polls on. Ranks that share cores sleep once
 * the wait passes 100 us, an eighth of the time waited so far, 200 us at
 * most (a wait ends at most 12.5 % or 200 us late): sched_yield gave the
 * spinning rank its full share of the core against the rank it waited for.
 * (1 ms at most slowed transfers through shared memory without a single
 * copy, which move only while the receiver polls.) */
static void rest(double waited)
{
    if (!g_rest || waited < 1e-4) {
        sched_yield();
        return;
    }
    const double s = waited / 8 < 2e-4 ? waited / 8 : 2e-4;
    const struct timespec ts = { 0, (long)(s * 1e9) };
    nanosleep(&ts, NULL);
}

void ra_watchdog_init(MPI_Comm world)
{
    if (g_wd == MPI_COMM_NULL && MPI_Comm_dup(world, &g_wd) != MPI_SUCCESS) g_wd = MPI_COMM_NULL;
    if (g_wd != MPI_COMM_NULL) ra_file_set_progress_hook(ra_watchdog_working); /* checkpoint writes */
}

/* A waiting rank answers the questions of ranks that timed out, so they can
 * tell a rank that waits like them from one that is gone; a working rank
 * says so (*answer: g_waiting or g_working). */
static void answer_questions(const int *answer)
{
    if (g_wd == MPI_COMM_NULL) return;
    for (;;) {
        int flag = 0, q;
        MPI_Status st;
        if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_ASK, g_wd, &flag, &st) != MPI_SUCCESS || !flag) return;
        MPI_Recv(&q, 1, MPI_INT, st.MPI_SOURCE, TAG_ASK, g_wd, MPI_STATUS_IGNORE);
        MPI_Request r;
        if (MPI_Isend(answer, 1, MPI_INT, st.MPI_SOURCE, TAG_ANSWER, g_wd, &r) == MPI_SUCCESS)
            MPI_Request_free(&r);
    }
}

void ra_watchdog_working(void)
{
    answer_questions(&g_working);
}

/* Receive the answer waiting from any rank into *a, if one is there. */
static int take_answer(int *from, int *a)
{
    int flag = 0;
    MPI_Status st;
    if (MPI_Iprobe(MPI_ANY_SOURCE, TAG_ANSWER, g_wd, &flag, &st) != MPI_SUCCESS || !flag) return 0;
    MPI_Recv(a, 1, MPI_INT, st.MPI_SOURCE, TAG_ANSWER, g_wd, MPI_STATUS_IGNORE);
    *from = st.MPI_SOURCE;
    return 1;
}

/* Ask every rank; list those that do not answer within ANSWER_SECONDS.
 * *working: how many answered that they are working. */
static void find_lost(char *list, size_t n, int *working)
{
    int rank, size, from, a;
    MPI_Comm_rank(g_wd, &rank);
    MPI_Comm_size(g_wd, &size);
    *working = 0;
    unsigned char *answered = calloc((size_t)size, 1);
    if (!answered) { snprintf(list, n, "?"); return; }
    answered[rank] = 1;
    while (take_answer(&from, &a)) {} /* late answers to an earlier round say nothing of now */
    for (int r = 0; r < size; r++) {
        MPI_Request req;
        if (r != rank && MPI_Isend(&g_ask, 1, MPI_INT, r, TAG_ASK, g_wd, &req) == MPI_SUCCESS)
            MPI_Request_free(&req);
    }
    int missing = size - 1;
    for (const double t0 = ra_now(); missing > 0 && ra_now() - t0 < ANSWER_SECONDS;) {
        answer_questions(&g_waiting);
        if (take_answer(&from, &a)) {
            if (!answered[from]) answered[from] = 1, missing--, *working += a == g_working;
        } else {
            rest(ra_now() - t0);
        }
    }
    size_t at = 0;
    list[0] = '\0';
    for (int r = 0; r < size && at < n; r++)
        if (!answered[r]) at += (size_t)snprintf(list + at, n - at, "%s%d", at ? ", " : "", r);
    free(answered);
}

/* Poll req for up to `seconds`, answering questions meanwhile; 1 when it
 * completed or failed (*rc: MPI_Testall's code), 0 when the time ran out. */
static int poll_for(int n, MPI_Request *req, double seconds, int *rc)
{
    const double t0 = ra_now();
    const unsigned every = g_rest ? 1 : 64; /* polls between rests: 64 a rest cost 15 % of a core */
    for (unsigned spin = 0;; spin++) {
        int done = 0;
        *rc = MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE);
        if (*rc != MPI_SUCCESS || done) return 1;
        if (spin % every == every - 1) {
            const double waited = ra_now() - t0;
            if (waited > seconds) return 0;
            answer_questions(&g_waiting);
            rest(waited);
        }
    }
}

int ra_waitall(int n, MPI_Request *req, const char *what, int peer)
{
    if (n <= 0) return MPI_SUCCESS;
    if (g_timeout <= 0) return MPI_Waitall(n, req, MPI_STATUSES_IGNORE);
    char lost[256] = "";
    int rc;
    for (;;) {
        if (poll_for(n, req, g_timeout, &rc)) return rc;
        if (g_wd == MPI_COMM_NULL) break;
        int working = 0;
        find_lost(lost, sizeof lost, &working);
        if (lost[0]) break;
        if (working) continue; /* every rank is there and one works: another run.timeout */
        /* every rank waits: a deadlock, unless the late rank has just joined
         * this very wait (it then answers "waiting" from it) */
        if (poll_for(n, req, ANSWER_SECONDS, &rc)) return rc;
        break;
    }
    int rank = -1, size = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    char from[64] = "";
    if (peer >= 0) snprintf(from, sizeof from, " from rank %d", peer);
    if (lost[0])
        fprintf(stderr,
                "[rank %d/%d] ringattn: error: %s: nothing%s for %.0f s (run.timeout); lost: rank %s (no answer "
                "within %.0f s: died, hangs or unreachable) - ending every rank\n",
                rank, size, what, from, g_timeout, lost, ANSWER_SECONDS);
    else
        fprintf(stderr,
                "[rank %d/%d] ringattn: error: %s: nothing%s for %.0f s (run.timeout); every rank answers, so "
                "they are all waiting (a deadlock, or a rank slower than run.timeout) - ending every rank\n",
                rank, size, what, from, g_timeout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    return MPI_ERR_OTHER; /* not reached */
}

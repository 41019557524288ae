/* Exact BM25 top-k over the bm25s engine's posting arrays in one call (searchgym.index.bm25s_engine).

   Index(docs, weights, starts, impact_docs, impact_weights, impact_starts, num_docs) keeps buffers of the
   engine's arrays (document-order lists with a sentinel after each; weight-order heads of the long lists)
   and a dense scratch accumulator. Index.top_k({term id: query weight}, k) returns ([doc], [score]): score
   descending, then document ascending; scores are float64 sums of float32 weight * query weight, the same
   values as the numpy path. The passes:

   1. every short list (no weight-order head) is added into the accumulator: the partial scores;
   2. the k best partial scores and the first max(k, 16) head documents of every long list are scored exactly
      (binary search per list); the k-th best of those exact scores and of the other partial scores is a floor
      the k-th result reaches;
   3. the floor is shared among the long lists (water-filling, as the numpy `_plan`): a list is read down to
      where its weights fall below its share (a "cut" list, looked up in), or added whole into the accumulator
      when that is past its head; a document outside every read part then scores below the floor, so the
      candidates hold the top-k. While adding lists whole would cost more than scoring 4x deeper heads, the
      heads are scored deeper first (a higher floor, shallower cuts). A cut list costing more in lookups than
      in adding it whole is added whole;
   4. each candidate whose partial score plus the cut lists' largest weights reaches the floor (or the k-heap's
      worst score, once full) is looked up in the cut lists and kept in the k-heap.
   Bounds are raised by a part in a billion (a sum in another order may differ in its last bit; keeping more
   candidates is always exact). The GIL is held throughout (the scratch is shared by the calls). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_DEPTH 16
#define SLACK (1 + 1e-9)
#define LOOKUP_COST 12.0 /* one binary search, in postings added to the accumulator (measured: 4, 12, 30 tried) */
#define IN_T 1           /* in the accumulated documents */
#define IN_H 2           /* scored exactly already */

typedef struct {
    double score;
    int32_t doc;
} Entry;

typedef struct {
    PyObject_HEAD
    Py_buffer bufs[6];
    int nbufs;
    const int32_t *docs, *impact_docs;
    const float *weights, *impact_weights;
    const int64_t *starts, *impact_starts;
    Py_ssize_t num_terms, num_docs, num_postings, num_impacts;
    double *acc;
    uint8_t *mark;
    int32_t *touched, *heads; /* growable scratch: accumulated documents, exactly scored documents */
    double *exact, *floors;   /* exact scores of `heads`; the floor's k-heap */
    Entry *best;              /* the result's k-heap */
    Py_ssize_t touched_cap, heads_cap, exact_cap, floors_cap, best_cap;
} Index;

typedef struct {
    Py_ssize_t term;
    double count;
    int64_t start, df, head_start, head;
    double upper;  /* largest weight * count (long lists) */
    int64_t depth; /* -1: added whole; else looked up, its head read to this depth */
} Term;

static void Index_dealloc(Index *self) {
    for (int i = 0; i < self->nbufs; i++) PyBuffer_Release(&self->bufs[i]);
    free(self->acc);
    free(self->mark);
    free(self->touched);
    free(self->heads);
    free(self->exact);
    free(self->floors);
    free(self->best);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int get_array(Index *self, PyObject *obj, Py_ssize_t itemsize, const char *fmt, const char *name,
                     const void **out, Py_ssize_t *len) {
    Py_buffer *b = &self->bufs[self->nbufs];
    if (PyObject_GetBuffer(obj, b, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    self->nbufs++;
    const char *f = b->format ? b->format : "B";
    if (f[0] == '<' || f[0] == '=' || f[0] == '@') f++;
    if (b->itemsize != itemsize || strchr(fmt, f[0]) == NULL || f[1] != '\0') {
        PyErr_Format(PyExc_TypeError, "%s: expected a contiguous array of %s, got format '%s'", name,
                     itemsize == 4 ? (fmt[0] == 'f' ? "float32" : "int32") : "int64", b->format);
        return -1;
    }
    *out = b->buf;
    *len = b->len / itemsize;
    return 0;
}

static int Index_init(Index *self, PyObject *args, PyObject *kwds) {
    PyObject *a[6];
    Py_ssize_t num_docs, n_docs, n_weights, n_starts, n_idocs, n_iweights, n_istarts;
    if (self->nbufs) {
        PyErr_SetString(PyExc_RuntimeError, "Index is already initialised");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "OOOOOOn", &a[0], &a[1], &a[2], &a[3], &a[4], &a[5], &num_docs)) return -1;
    if (get_array(self, a[0], 4, "iIl", "docs", (const void **)&self->docs, &n_docs) < 0 ||
        get_array(self, a[1], 4, "f", "weights", (const void **)&self->weights, &n_weights) < 0 ||
        get_array(self, a[2], 8, "qlQL", "starts", (const void **)&self->starts, &n_starts) < 0 ||
        get_array(self, a[3], 4, "iIl", "impact_docs", (const void **)&self->impact_docs, &n_idocs) < 0 ||
        get_array(self, a[4], 4, "f", "impact_weights", (const void **)&self->impact_weights, &n_iweights) < 0 ||
        get_array(self, a[5], 8, "qlQL", "impact_starts", (const void **)&self->impact_starts, &n_istarts) < 0)
        return -1;
    if (n_docs != n_weights || n_idocs != n_iweights || n_starts != n_istarts || n_starts < 1 || num_docs < 0 ||
        self->starts[n_starts - 1] != n_docs || self->impact_starts[n_istarts - 1] != n_idocs) {
        PyErr_SetString(PyExc_ValueError, "Index: posting arrays of inconsistent lengths");
        return -1;
    }
    self->num_terms = n_starts - 1;
    self->num_docs = num_docs;
    self->num_postings = n_docs;
    self->num_impacts = n_idocs;
    /* calloc maps zero pages lazily: untouched documents cost nothing */
    self->acc = calloc(num_docs ? num_docs : 1, sizeof(double));
    self->mark = calloc(num_docs ? num_docs : 1, 1);
    if (!self->acc || !self->mark) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* make room for `need` items of `size` bytes in *buf (capacity *cap items) */
static int grow(void **buf, Py_ssize_t *cap, Py_ssize_t need, size_t size) {
    if (need <= *cap) return 0;
    Py_ssize_t cap2 = *cap ? *cap : 1024;
    while (cap2 < need) cap2 *= 2;
    void *b = realloc(*buf, cap2 * size);
    if (!b) {
        PyErr_NoMemory();
        return -1;
    }
    *buf = b;
    *cap = cap2;
    return 0;
}

/* weight of document d in the (document-order) list of t, 0 if absent */
static inline double lookup(const Index *self, const Term *t, int32_t d) {
    const int32_t *docs = self->docs + t->start;
    int64_t lo = 0, hi = t->df;
    while (lo < hi) {
        int64_t mid = (lo + hi) >> 1;
        if (docs[mid] < d)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (lo < t->df && docs[lo] == d) ? (double)self->weights[t->start + lo] * t->count : 0.0;
}

/* k-heap: the root is the worst entry kept (lowest score, then highest document) */
static inline int worse(const Entry *a, const Entry *b) {
    return a->score < b->score || (a->score == b->score && a->doc > b->doc);
}

static void heap_push(Entry *heap, Py_ssize_t *n, Py_ssize_t k, double score, int32_t doc) {
    Entry e = {score, doc};
    Py_ssize_t i;
    if (k <= 0) return;
    if (*n < k) {
        i = (*n)++;
        while (i > 0) {
            Py_ssize_t p = (i - 1) / 2;
            if (!worse(&e, &heap[p])) break;
            heap[i] = heap[p];
            i = p;
        }
        heap[i] = e;
        return;
    }
    if (!worse(&heap[0], &e)) return;
    i = 0;
    for (;;) {
        Py_ssize_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && worse(&heap[c + 1], &heap[c])) c++;
        if (!worse(&heap[c], &e)) break;
        heap[i] = heap[c];
        i = c;
    }
    heap[i] = e;
}

/* min-heap of doubles: the k-th largest value seen */
static void floor_push(double *h, Py_ssize_t *n, Py_ssize_t k, double v) {
    Py_ssize_t i;
    if (k <= 0) return;
    if (*n < k) {
        i = (*n)++;
        while (i > 0 && h[(i - 1) / 2] > v) {
            h[i] = h[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        h[i] = v;
        return;
    }
    if (v <= h[0]) return;
    i = 0;
    for (;;) {
        Py_ssize_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
}

static int cmp_best(const void *a, const void *b) {
    const Entry *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->doc > y->doc) - (x->doc < y->doc);
}

static int cmp_term(const void *a, const void *b) {
    const Term *x = a, *y = b;
    return (x->term > y->term) - (x->term < y->term);
}

static int cmp_upper(const void *a, const void *b) { /* (largest weight * count, term) ascending */
    const Term *x = *(Term *const *)a, *y = *(Term *const *)b;
    if (x->upper != y->upper) return x->upper < y->upper ? -1 : 1;
    return (x->term > y->term) - (x->term < y->term);
}

static PyObject *result(Entry *heap, Py_ssize_t n) {
    if (n > 1) qsort(heap, n, sizeof(Entry), cmp_best);
    PyObject *docs = PyList_New(n), *scores = PyList_New(n);
    if (!docs || !scores) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *d = PyLong_FromLong(heap[i].doc), *s = PyFloat_FromDouble(heap[i].score);
        if (!d || !s) {
            Py_XDECREF(d);
            Py_XDECREF(s);
            goto fail;
        }
        PyList_SET_ITEM(docs, i, d);
        PyList_SET_ITEM(scores, i, s);
    }
    return Py_BuildValue("(NN)", docs, scores);
fail:
    Py_XDECREF(docs);
    Py_XDECREF(scores);
    return NULL;
}

/* add term t's whole list into the accumulator */
static void accumulate(Index *self, const Term *t, Py_ssize_t *n_touched) {
    const int32_t *docs = self->docs + t->start;
    const float *weights = self->weights + t->start;
    double *acc = self->acc;
    uint8_t *mark = self->mark;
    int32_t *touched = self->touched;
    Py_ssize_t n = *n_touched;
    for (int64_t p = 0; p < t->df; p++) {
        int32_t d = docs[p];
        if (!(mark[d] & IN_T)) {
            mark[d] |= IN_T;
            touched[n++] = d;
        }
        acc[d] += (double)weights[p] * t->count;
    }
    *n_touched = n;
}

static void reset(Index *self, Py_ssize_t n_touched, Py_ssize_t n_heads) {
    for (Py_ssize_t i = 0; i < n_touched; i++) {
        self->acc[self->touched[i]] = 0.0;
        self->mark[self->touched[i]] = 0;
    }
    for (Py_ssize_t i = 0; i < n_heads; i++) self->mark[self->heads[i]] = 0;
}

/* read the query {term id: weight} into terms[], ascending term id */
static int read_terms(Index *self, PyObject *query, Term *terms) {
    PyObject *key, *value;
    Py_ssize_t pos = 0, i = 0;
    while (PyDict_Next(query, &pos, &key, &value)) {
        Py_ssize_t t = PyLong_AsSsize_t(key);
        double c = PyFloat_AsDouble(value);
        if (PyErr_Occurred()) return -1;
        if (t < 0 || t >= self->num_terms) {
            PyErr_Format(PyExc_ValueError, "term id %zd is not in this index (0..%zd)", t, self->num_terms - 1);
            return -1;
        }
        Term *x = &terms[i++];
        x->term = t;
        x->count = c;
        x->start = self->starts[t];
        x->df = self->starts[t + 1] - x->start - 1;
        x->head_start = self->impact_starts[t];
        x->head = self->impact_starts[t + 1] - x->head_start;
        x->upper = x->head ? (double)self->impact_weights[x->head_start] * c : 0.0;
        x->depth = -1;
    }
    qsort(terms, i, sizeof(Term), cmp_term);
    return 0;
}

/* the floor shared among the long lists: sets each one's depth (-1: added whole); 0 when none is cut */
static Py_ssize_t plan(Index *self, Term **longs, Py_ssize_t n_long, double theta) {
    Term *order[n_long];
    memcpy(order, longs, n_long * sizeof(Term *));
    qsort(order, n_long, sizeof(Term *), cmp_upper);
    double budget = theta, bound = 0.0;
    Py_ssize_t left = n_long, i = 0, cut = 0;
    for (; i < n_long && order[i]->upper * left < budget; i++) { /* below its share: only looked up */
        order[i]->depth = 0;
        budget -= order[i]->upper;
        left--;
    }
    double share = left ? budget / left : 0.0;
    for (; i < n_long; i++) {
        Term *t = order[i];
        const float *w = self->impact_weights + t->head_start;
        int64_t lo = 0, hi = t->head; /* weights descend: the first below share / count */
        while (lo < hi) {
            int64_t mid = (lo + hi) >> 1;
            if ((double)w[mid] * t->count >= share)
                lo = mid + 1;
            else
                hi = mid;
        }
        t->depth = lo < t->head ? lo : -1;
    }
    for (i = 0; i < n_long; i++) {
        Term *t = order[i];
        if (t->depth >= 0) {
            cut++;
            bound += (double)self->impact_weights[t->head_start + t->depth] * t->count;
        }
    }
    if (cut && bound * SLACK < theta) return cut;
    for (i = 0; i < n_long; i++) longs[i]->depth = -1;
    return 0;
}

static int cmp_df(const void *a, const void *b) {
    const Term *x = *(Term *const *)a, *y = *(Term *const *)b;
    return (x->df > y->df) - (x->df < y->df);
}

/* cut lists shorter than their lookups would cost are added whole instead (either is exact); returns the
   cut lists (in `cut`, ascending term id) and their largest weights' sum */
static Py_ssize_t settle_cut(Index *self, Term **longs, Py_ssize_t n_long, double theta, Py_ssize_t *n_touched,
                             Term **cut, double *upper) {
    Py_ssize_t n_cut = 0;
    double up = 0.0, cands = 0.0;
    for (Py_ssize_t j = 0; j < n_long; j++)
        if (longs[j]->depth >= 0) {
            cut[n_cut++] = longs[j];
            up += longs[j]->upper;
            cands += (double)longs[j]->depth;
        }
    if (!n_cut) {
        *upper = 0.0;
        return 0;
    }
    for (Py_ssize_t i = 0; i < *n_touched; i++) {
        int32_t d = self->touched[i];
        cands += !(self->mark[d] & IN_H) && self->acc[d] + up * SLACK >= theta;
    }
    Term *by_df[n_cut];
    memcpy(by_df, cut, n_cut * sizeof(Term *));
    qsort(by_df, n_cut, sizeof(Term *), cmp_df);
    for (Py_ssize_t j = 0; j < n_cut && (double)by_df[j]->df < cands * LOOKUP_COST; j++) {
        by_df[j]->depth = -1;
        accumulate(self, by_df[j], n_touched);
    }
    n_cut = 0;
    up = 0.0;
    for (Py_ssize_t j = 0; j < n_long; j++)
        if (longs[j]->depth >= 0) {
            cut[n_cut++] = longs[j];
            up += longs[j]->upper;
        }
    *upper = up * SLACK;
    return n_cut;
}

static PyObject *Index_top_k(Index *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyDict_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "top_k(query: dict[int, float], k: int)");
        return NULL;
    }
    Py_ssize_t k = PyLong_AsSsize_t(args[1]), m = PyDict_GET_SIZE(args[0]);
    if (k == -1 && PyErr_Occurred()) return NULL;
    if (k <= 0 || m == 0) return result(NULL, 0);
    Term *terms = malloc(m * sizeof(Term));
    Term **longs = malloc(m * sizeof(Term *)), **cut = malloc(m * sizeof(Term *));
    PyObject *out = NULL;
    Py_ssize_t n_touched = 0, n_heads = 0, n_long = 0, n_best = 0, n_floors = 0, total_df = 0, total_head = 0;
    if (!terms || !longs || !cut) {
        PyErr_NoMemory();
        goto done;
    }
    if (read_terms(self, args[0], terms) < 0) goto done;
    for (Py_ssize_t j = 0; j < m; j++) {
        total_df += terms[j].df;
        total_head += terms[j].head;
        if (terms[j].head) longs[n_long++] = &terms[j];
    }
    if (k > total_df) k = total_df; /* no more results than postings (and heaps sized to that) */
    if (k == 0) {
        out = result(NULL, 0);
        goto done;
    }
    if (grow((void **)&self->touched, &self->touched_cap, total_df, sizeof(int32_t)) < 0 ||
        grow((void **)&self->heads, &self->heads_cap, total_head + k, sizeof(int32_t)) < 0 ||
        grow((void **)&self->exact, &self->exact_cap, total_head + k, sizeof(double)) < 0)
        goto done;
    if (grow((void **)&self->best, &self->best_cap, k, sizeof(Entry)) < 0 ||
        grow((void **)&self->floors, &self->floors_cap, k, sizeof(double)) < 0)
        goto done;
    Entry *best = self->best;
    if (m == 1 && n_long == 1 && k <= terms[0].head) { /* one list: its top-k heads its weight order */
        for (Py_ssize_t i = 0; i < k; i++) {
            best[i].score = (double)self->impact_weights[terms[0].head_start + i] * terms[0].count;
            best[i].doc = self->impact_docs[terms[0].head_start + i];
        }
        out = result(best, k);
        goto done;
    }
    /* 1. the short lists, whole */
    for (Py_ssize_t j = 0; j < m; j++)
        if (!terms[j].head) accumulate(self, &terms[j], &n_touched);
    double theta = 0.0;
    if (n_long) {
        /* 2. the floor */
        /* the best partial scores, exactly: they lift the floor when the short lists decide */
        for (Py_ssize_t i = 0; i < n_touched; i++)
            heap_push(best, &n_best, k, self->acc[self->touched[i]], self->touched[i]);
        for (Py_ssize_t i = 0; i < n_best; i++) {
            self->mark[best[i].doc] |= IN_H;
            self->heads[n_heads++] = best[i].doc;
        }
        n_best = 0;
        int64_t depth = 0, next = k > FIRST_DEPTH ? k : FIRST_DEPTH, deepest = 0;
        for (Py_ssize_t j = 0; j < n_long; j++)
            if (longs[j]->head > deepest) deepest = longs[j]->head;
        for (Py_ssize_t scored = 0;;) {
            for (Py_ssize_t j = 0; j < n_long; j++) {
                const int32_t *h = self->impact_docs + longs[j]->head_start;
                int64_t n = next < longs[j]->head ? next : longs[j]->head;
                for (int64_t i = depth; i < n; i++)
                    if (!(self->mark[h[i]] & IN_H)) {
                        self->mark[h[i]] |= IN_H;
                        self->heads[n_heads++] = h[i];
                    }
            }
            for (; scored < n_heads; scored++) {
                int32_t d = self->heads[scored];
                double s = self->acc[d];
                for (Py_ssize_t j = 0; j < n_long; j++) s += lookup(self, longs[j], d);
                self->exact[scored] = s;
                /* one value per document: a short-list document deepened into has its partial below */
                if (!depth || !(self->mark[d] & IN_T)) floor_push(self->floors, &n_floors, k, s);
            }
            if (!depth)
                for (Py_ssize_t i = 0; i < n_touched; i++)
                    if (!(self->mark[self->touched[i]] & IN_H))
                        floor_push(self->floors, &n_floors, k, self->acc[self->touched[i]]);
            if (n_floors == k) theta = self->floors[0];
            /* 3. how deep to read each long list; deeper heads first when reading lists whole costs more */
            plan(self, longs, n_long, theta);
            double whole = 0.0;
            for (Py_ssize_t j = 0; j < n_long; j++)
                if (longs[j]->depth < 0) whole += (double)longs[j]->df;
            int64_t deeper = next * 4 < deepest ? next * 4 : deepest;
            if (next >= deepest || whole <= (double)(deeper - next) * n_long * n_long * LOOKUP_COST) break;
            depth = next;
            next = deeper;
        }
        for (Py_ssize_t j = 0; j < n_long; j++)
            if (longs[j]->depth < 0) accumulate(self, longs[j], &n_touched);
    }
    /* 4. the candidates: scored documents, accumulated ones, the cut lists' read heads */
    double upper = 0.0;
    Py_ssize_t n_scored = n_heads, n_cut = settle_cut(self, longs, n_long, theta, &n_touched, cut, &upper);
    for (Py_ssize_t i = 0; i < n_scored; i++)
        if (self->exact[i] >= theta) heap_push(best, &n_best, k, self->exact[i], self->heads[i]);
    for (Py_ssize_t i = 0; i < n_touched; i++) {
        int32_t d = self->touched[i];
        double s = self->acc[d], bar = n_best == k && best[0].score > theta ? best[0].score : theta;
        if ((self->mark[d] & IN_H) || s + upper < bar) continue;
        for (Py_ssize_t j = 0; j < n_cut; j++) s += lookup(self, cut[j], d);
        if (s >= theta) heap_push(best, &n_best, k, s, d);
    }
    for (Py_ssize_t c = 0; c < n_cut; c++) {
        const int32_t *h = self->impact_docs + cut[c]->head_start;
        for (int64_t i = 0; i < cut[c]->depth; i++) {
            int32_t d = h[i];
            if (self->mark[d]) continue;
            self->mark[d] |= IN_H;
            self->heads[n_heads++] = d;
            double s = 0.0;
            for (Py_ssize_t j = 0; j < n_cut; j++) s += lookup(self, cut[j], d);
            if (s >= theta) heap_push(best, &n_best, k, s, d);
        }
    }
    out = result(best, n_best);
done:
    reset(self, n_touched, n_heads);
    free(terms);
    free(longs);
    free(cut);
    return out;
}

static PyMethodDef Index_methods[] = {
    {"top_k", (PyCFunction)(void (*)(void))Index_top_k, METH_FASTCALL,
     "top_k(query: dict[int, float], k: int) -> (docs, scores): exact BM25 top-k, score descending then "
     "document ascending."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject IndexType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "searchgym.index._bm25kernel.Index",
    .tp_basicsize = sizeof(Index),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Index(docs, weights, starts, impact_docs, impact_weights, impact_starts, num_docs)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Index_init,
    .tp_dealloc = (destructor)Index_dealloc,
    .tp_methods = Index_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_bm25kernel", "Exact BM25 top-k over the bm25s engine's arrays.", -1, NULL,
};

PyMODINIT_FUNC PyInit__bm25kernel(void) {
    if (PyType_Ready(&IndexType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&IndexType);
    if (PyModule_AddObject(m, "Index", (PyObject *)&IndexType) < 0) {
        Py_DECREF(&IndexType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

/* evaluate.c: score images with the classifier (see evaluate.h). */
#include "evaluate.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classifier.h"
#include "dataset.h"
#include "dist.h"
#include "frechet.h"
#include "h5attr.h"
#include "h5tensor.h"
#include "manifold.h"
#include "rng.h"
#include "util.h"

#define EVAL_BATCH 250
#define IMG (CLS_SIZE * CLS_SIZE)

/* Sums over the scored images, added up over the ranks. */
typedef struct {
    FeatureStats feat;
    double hist[CLS_CLASSES], prob[CLS_CLASSES], plogp, confidence;
    double correct; /* real images: predictions equal to the label */
    float *keep;    /* when set: each scored image's features, [kept, CLS_FEATURES] (this rank) */
    long kept;
} Scores;

static void scores_init(Scores *s) {
    memset(s, 0, sizeof *s);
    feature_stats_init(&s->feat, CLS_FEATURES);
}

/* Run the classifier over images x [n, 1, 28, 28] in batches. */
static void score(Scores *s, Classifier *c, const float *params, const float *x,
                  const int *labels, long n) {
    for (long i0 = 0; i0 < n; i0 += c->max_batch) {
        const int b = n - i0 < c->max_batch ? (int)(n - i0) : c->max_batch;
        const float *z = classifier_forward(c, params, x + (size_t)i0 * IMG, b);
        feature_stats_add(&s->feat, c->y4, b);
        if (s->keep) {
            memcpy(s->keep + (size_t)s->kept * CLS_FEATURES, c->y4, (size_t)b * CLS_FEATURES * sizeof(float));
            s->kept += b;
        }
        for (int i = 0; i < b; i++) {
            const float *zi = z + (size_t)i * CLS_CLASSES;
            int best = 0;
            for (int k = 1; k < CLS_CLASSES; k++) best = zi[k] > zi[best] ? k : best;
            double sum = 0.0, p[CLS_CLASSES];
            for (int k = 0; k < CLS_CLASSES; k++) sum += p[k] = exp((double)zi[k] - zi[best]);
            for (int k = 0; k < CLS_CLASSES; k++) {
                p[k] /= sum;
                s->prob[k] += p[k];
                if (p[k] > 0) s->plogp += p[k] * log(p[k]);
            }
            s->hist[best] += 1;
            s->confidence += p[best];
            if (labels) s->correct += best == labels[i0 + i];
        }
    }
}

static void scores_reduce(Scores *s) {
    feature_stats_reduce(&s->feat);
    dist_sum_doubles(s->hist, CLS_CLASSES);
    dist_sum_doubles(s->prob, CLS_CLASSES);
    dist_sum_doubles(&s->plogp, 1);
    dist_sum_doubles(&s->confidence, 1);
    dist_sum_doubles(&s->correct, 1);
}

/* This rank's share of the first n images of a split, as floats in [-1, 1] (plus noise). */
static float *real_images(const char *dir, const char *split, long *n, double noise,
                          long *first, long *count, int **labels) {
    Dataset d;
    dataset_load_or_die(&d, dir, split);
    if (d.rows != CLS_SIZE || d.cols != CLS_SIZE) die("%s/%s: images are not 28x28", dir, split);
    if (*n > d.count) *n = d.count;
    dist_share(*n, dist()->rank, dist()->size, first, count);
    float *x = floats_alloc((size_t)*count * IMG + 1);
    int *idx = xcalloc((size_t)*count + 1, sizeof(int));
    for (long i = 0; i < *count; i++) idx[i] = (int)(*first + i);
    if (*count) dataset_images_to_float(x, &d, idx, (int)*count);
    *labels = xcalloc((size_t)*count + 1, sizeof(int));
    for (long i = 0; i < *count; i++) (*labels)[i] = d.labels[*first + i];
    if (noise > 0)
        for (long i = 0; i < *count; i++) {
            float *xi = x + (size_t)i * IMG, eps[IMG];
            rng_normal(eps, IMG, 0, RNG_EVAL, 0, (uint32_t)(*first + i));
            for (int k = 0; k < IMG; k++) {
                const float v = xi[k] + (float)noise * eps[k];
                xi[k] = v < -1.0f ? -1.0f : v > 1.0f ? 1.0f : v;
            }
        }
    free(idx);
    dataset_free(&d);
    return x;
}

/* This rank's share of n images of a samples file, and of their /labels (the class each was
 * generated for) when the file has them (else *labels = NULL); *held: the file's image count.
 * The first n of an unlabelled file (its images are independent draws); of a labelled file n
 * spread evenly over it, image i * held / n: `ddpm sample --classes` writes the digits in runs,
 * and its first n would leave out the last digits. */
static float *sample_images(const char *path, long *n, long *first, long *count, int **labels,
                            long *held) {
    hid_t f = h5t_open_read(path);
    int nd = 0;
    long long dims[H5T_MAX_DIMS], ldims[H5T_MAX_DIMS];
    if (!h5t_dims(f, "/samples", &nd, dims)) die("%s: no dataset /samples (not a samples file?)", path);
    if (nd != 4 || dims[1] != 1 || dims[2] != CLS_SIZE || dims[3] != CLS_SIZE || dims[0] < 2)
        die("%s: /samples must be [N >= 2, 1, 28, 28] for the MNIST classifier", path);
    float *all = floats_alloc((size_t)dims[0] * IMG);
    h5t_read_f32(f, "/samples", all, 4, dims);
    int *all_labels = NULL;
    if (h5t_dims(f, "/labels", &nd, ldims)) {
        if (nd != 1 || ldims[0] != dims[0])
            die("%s: /labels must be [%lld], one per sample", path, dims[0]);
        all_labels = xcalloc((size_t)dims[0], sizeof(int));
        h5t_read_i32(f, "/labels", all_labels, 1, ldims);
        for (long long i = 0; i < dims[0]; i++)
            if (all_labels[i] < 0 || all_labels[i] >= CLS_CLASSES)
                die("%s: /labels[%lld] = %d is not a digit 0..%d", path, i, all_labels[i],
                    CLS_CLASSES - 1);
    }
    h5t_close(f);
    *held = (long)dims[0];
    if (*n > dims[0]) *n = dims[0];
    const int spread = all_labels && *n < dims[0];
    if (spread) /* in place: index i * held / n >= i */
        for (long i = 0; i < *n; i++) {
            const long j = (long)((long long)i * dims[0] / *n);
            memmove(all + (size_t)i * IMG, all + (size_t)j * IMG, IMG * sizeof(float));
            all_labels[i] = all_labels[j];
        }
    long bad = 0, first_bad = -1; /* a diverged model writes NaN: every score would be NaN */
    long out = 0, first_out = -1; /* images of another scale ([0, 1], [0, 255]) score nonsense */
    float out_value = 0;
    for (long i = 0; i < *n; i++) {
        int finite = 1, inside = 1;
        for (int k = 0; k < IMG; k++) {
            const float v = all[(size_t)i * IMG + k];
            finite &= isfinite(v);
            if (isfinite(v) && (v < -1.001f || v > 1.001f) && inside) {
                inside = 0;
                if (first_out < 0) first_out = i, out_value = v;
            }
        }
        if (!finite && first_bad < 0) first_bad = i;
        bad += !finite;
        out += !inside;
    }
    if (spread) { /* the first's index in the file: i * held / n */
        first_bad = (long)((long long)first_bad * dims[0] / *n);
        first_out = (long)((long long)first_out * dims[0] / *n);
    }
    if (bad) die("%s: %ld of the %ld images hold NaN or infinite values (the first: image %ld)",
                 path, bad, *n, first_bad);
    if (out)
        die("%s: %ld of the %ld images have values outside [-1, 1] (the first: image %ld, %g); "
            "ddpm eval scores images scaled to [-1, 1] (8-bit pixels p: p / 127.5 - 1)",
            path, out, *n, first_out, out_value);
    dist_share(*n, dist()->rank, dist()->size, first, count);
    float *x = floats_alloc((size_t)*count * IMG + 1);
    memcpy(x, all + (size_t)*first * IMG, (size_t)*count * IMG * sizeof(float));
    *labels = NULL;
    if (all_labels) {
        *labels = xcalloc((size_t)*count + 1, sizeof(int));
        memcpy(*labels, all_labels + *first, (size_t)*count * sizeof(int));
    }
    free(all);
    free(all_labels);
    return x;
}

/* Conditional samples, class by class: how many asked for class k, how many of those the
 * classifier calls k, and the FID against the test images of class k. */
typedef struct {
    double n[CLS_CLASSES], match[CLS_CLASSES], n_ref[CLS_CLASSES], fid[CLS_CLASSES];
} PerClass;

static double fid_of(const Scores *a, const Scores *b, double *mean_term);

/* The classifier and this rank's share of the reference images (the test set) with labels. */
typedef struct {
    Classifier c;
    float *params;
    double cls_acc; /* the classifier's recorded test accuracy */
    float *ref;
    int *ref_labels;
    long rcount;
} Scorer;

static void scorer_open(Scorer *sc, const char *classifier, const char *ref_dir) {
    classifier_build(&sc->c, EVAL_BATCH);
    sc->params = floats_alloc(sc->c.table.total);
    sc->cls_acc = 0.0;
    classifier_load(classifier, &sc->c, sc->params, &sc->cls_acc);
    long n_ref = 10000, rfirst;
    sc->ref = real_images(ref_dir, "t10k", &n_ref, 0.0, &rfirst, &sc->rcount, &sc->ref_labels);
}

static void scorer_close(Scorer *sc) {
    free(sc->ref), free(sc->ref_labels), free(sc->params);
    classifier_free(&sc->c);
}

/* Score the images of each class apart (this rank's x with labels, and the test images by their
 * labels). Collective: every rank walks all classes. Results on rank 0. */
static void per_class(PerClass *pc, Scorer *sc, const float *x, const int *labels, long count) {
    const long rcount = sc->rcount;
    const long most = count > rcount ? count : rcount;
    float *pick = floats_alloc((size_t)most * IMG + 1);
    int *pick_labels = xcalloc((size_t)most + 1, sizeof(int));
    memset(pc, 0, sizeof *pc);
    for (int k = 0; k < CLS_CLASSES; k++) {
        Scores s, r;
        scores_init(&s);
        scores_init(&r);
        for (int set = 0; set < 2; set++) { /* 0: the samples, 1: the test images */
            const float *from = set ? sc->ref : x;
            const int *lab = set ? sc->ref_labels : labels;
            long m = 0;
            for (long i = 0; i < (set ? rcount : count); i++)
                if (lab[i] == k) {
                    memcpy(pick + (size_t)m * IMG, from + (size_t)i * IMG, IMG * sizeof(float));
                    pick_labels[m++] = k;
                }
            score(set ? &r : &s, &sc->c, sc->params, pick, pick_labels, m);
        }
        scores_reduce(&s);
        scores_reduce(&r);
        pc->n[k] = (double)s.feat.n;
        pc->n_ref[k] = (double)r.feat.n;
        pc->match[k] = s.correct;
        pc->fid[k] = dist_is_root() && s.feat.n >= 2 && r.feat.n >= 2 ? fid_of(&s, &r, NULL) : NAN;
        feature_stats_free(&s.feat);
        feature_stats_free(&r.feat);
    }
    free(pick), free(pick_labels);
}

static void print_per_class(const PerClass *pc) {
    printf("per class   class      N   classified as asked   FID (against N test images)\n");
    for (int k = 0; k < CLS_CLASSES; k++)
        if (pc->n[k] > 0)
            printf("            %5d %6.0f   %8.2f%%            %9.3f (%.0f)\n", k, pc->n[k],
                   100.0 * pc->match[k] / pc->n[k], pc->fid[k], pc->n_ref[k]);
}

/* s as a JSON string: quotes, backslashes and control characters escaped */
static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void write_json(const EvalOptions *o, const char *source, long n, long n_ref, double fid,
                       double fid_mean, const double *hist, double entropy, double confidence, double is,
                       double precision, double recall, long n_pr, double cls_acc,
                       double accuracy, const PerClass *pc, long spread_over) {
    char tmp[1100];
    tmp_file_begin(tmp, sizeof tmp, o->out_json);
    FILE *f = fopen(tmp, "w");
    if (!f) die("%s: cannot write: %s", tmp, strerror(errno));
    fputs("{\n  \"source\": ", f);
    json_string(f, source);
    fprintf(f, ",\n  \"n\": %ld,\n", n);
    if (spread_over) fprintf(f, "  \"spread_over\": %ld,\n", spread_over);
    if (o->real_split) fprintf(f, "  \"noise\": %g,\n  \"accuracy\": %.6f,\n", o->noise, accuracy);
    char ref[1100];
    snprintf(ref, sizeof ref, "%s/t10k", o->ref_dir);
    fputs("  \"reference\": ", f);
    json_string(f, ref);
    fprintf(f, ",\n  \"n_reference\": %ld,\n  \"classifier\": ", n_ref);
    json_string(f, o->classifier);
    fprintf(f, ",\n  \"classifier_test_accuracy\": %.4f,\n", cls_acc);
    if (isnan(fid)) fprintf(f, "  \"fid\": null,\n  \"fid_mean_term\": null,\n  \"class_histogram\": [");
    else fprintf(f, "  \"fid\": %.6g,\n  \"fid_mean_term\": %.6g,\n  \"class_histogram\": [", fid, fid_mean);
    for (int k = 0; k < CLS_CLASSES; k++) fprintf(f, "%s%.0f", k ? ", " : "", hist[k]);
    fprintf(f, "],\n  \"class_entropy_nats\": %.6f,\n  \"class_entropy_max_nats\": %.6f,\n", entropy, log(CLS_CLASSES));
    fprintf(f, "  \"mean_confidence\": %.6f,\n  \"inception_score\": %.6f", confidence, is);
    if (!isnan(precision))
        fprintf(f, ",\n  \"precision\": %.6f,\n  \"recall\": %.6f,\n  \"pr_k\": %d,\n"
                "  \"pr_n\": %ld", precision, recall, MANIFOLD_K, n_pr);
    if (pc) {
        fprintf(f, ",\n  \"label_match\": %.6f,\n  \"per_class\": [", accuracy);
        for (int k = 0, first = 1; k < CLS_CLASSES; k++) {
            if (pc->n[k] == 0) continue;
            char cfid[32] = "null"; /* one image of a class has no covariance */
            if (!isnan(pc->fid[k])) snprintf(cfid, sizeof cfid, "%.6g", pc->fid[k]);
            fprintf(f, "%s\n    {\"class\": %d, \"n\": %.0f, \"label_match\": %.6f, \"fid\": %s, "
                    "\"n_reference\": %.0f}", first ? "" : ",", k, pc->n[k], pc->match[k] / pc->n[k],
                    cfid, pc->n_ref[k]);
            first = 0;
        }
        fprintf(f, "\n  ]");
    }
    fprintf(f, "\n}\n");
    if (fclose(f) != 0 || rename(tmp, o->out_json) != 0) die("%s: cannot write: %s", o->out_json, strerror(errno));
    tmp_file_done(tmp);
}

/* FID between the features summed in a and in b (after scores_reduce); its |mu_a - mu_b|^2 term
 * in *mean_term unless NULL. */
static double fid_of(const Scores *a, const Scores *b, double *mean_term) {
    const int d = CLS_FEATURES;
    double *mu1 = xcalloc(d, sizeof(double)), *mu2 = xcalloc(d, sizeof(double));
    double *s1 = xcalloc((size_t)d * d, sizeof(double)), *s2 = xcalloc((size_t)d * d, sizeof(double));
    feature_stats_moments(&a->feat, mu1, s1);
    feature_stats_moments(&b->feat, mu2, s2);
    const double fid = frechet_distance_parts(mu1, s1, mu2, s2, d, mean_term);
    free(mu1), free(mu2), free(s1), free(s2);
    return fid;
}

/* Score this rank's images x (with labels, else NULL) into s and the reference test images
 * into r, both summed over the ranks; with keep, each also keeps this rank's features. */
static void score_both(Scores *s, Scores *r, Scorer *sc, const float *x, const int *labels,
                       long count, int keep) {
    scores_init(s);
    scores_init(r);
    if (keep) {
        s->keep = floats_alloc((size_t)(count + 1) * CLS_FEATURES);
        r->keep = floats_alloc((size_t)(sc->rcount + 1) * CLS_FEATURES);
    }
    score(s, &sc->c, sc->params, x, labels, count);
    score(r, &sc->c, sc->params, sc->ref, sc->ref_labels, sc->rcount);
    scores_reduce(s);
    scores_reduce(r);
}

/* Precision and recall (manifold.h) on rank 0 (the kept features are gathered there; NaN
 * elsewhere and when there are too few images for the k-nearest-neighbour balls): the first
 * m = min(n, n_ref, PR_MAX) images of s against m reference images spread evenly over the test
 * set (every (n_ref/m)-th: MNIST's test set is ordered, its first half the cleaner writers).
 * The cost grows as m^2, hence the cap. Collective. Returns m. */
#define PR_MAX 10000
static long manifold_scores(double *precision, double *recall, const Scores *s, long n,
                            const Scores *r, long n_ref) {
    const int root = dist_is_root();
    float *gen = root ? floats_alloc((size_t)n * CLS_FEATURES) : NULL;
    float *ref = root ? floats_alloc((size_t)n_ref * CLS_FEATURES) : NULL;
    dist_gather_shares(gen, s->keep, n, CLS_FEATURES);
    dist_gather_shares(ref, r->keep, n_ref, CLS_FEATURES);
    long m = n < n_ref ? n : n_ref;
    m = m < PR_MAX ? m : PR_MAX;
    if (root && m > MANIFOLD_K) {
        /* the evenly spread subsets, in place (i * n / m >= i): of the samples too, whose
         * classes come in runs (--classes) */
        for (long i = 0; i < m; i++) {
            memmove(ref + (size_t)i * CLS_FEATURES, ref + (size_t)(i * n_ref / m) * CLS_FEATURES,
                    CLS_FEATURES * sizeof(float));
            memmove(gen + (size_t)i * CLS_FEATURES, gen + (size_t)(i * n / m) * CLS_FEATURES,
                    CLS_FEATURES * sizeof(float));
        }
        precision_recall(precision, recall, gen, m, ref, m, CLS_FEATURES, MANIFOLD_K);
    }
    free(gen), free(ref);
    return m;
}

void evaluate_check_inputs(const char *classifier, const char *ref_dir) {
    Classifier c;
    classifier_build(&c, 1);
    float *params = floats_alloc(c.table.total);
    classifier_load(classifier, &c, params, NULL);
    free(params);
    classifier_free(&c);
    Dataset d;
    dataset_load_or_die(&d, ref_dir, "t10k");
    if (d.rows != CLS_SIZE || d.cols != CLS_SIZE) die("%s/t10k: images are not 28x28", ref_dir);
    dataset_free(&d);
}

double evaluate_fid(const char *classifier, const char *ref_dir, const float *x, long count) {
    Scores s, r;
    Scorer sc;
    scorer_open(&sc, classifier, ref_dir);
    score_both(&s, &r, &sc, x, NULL, count, 0);
    scorer_close(&sc);
    double fid = fid_of(&s, &r, NULL);
    fid = dist_is_root() ? fid : 0.0; /* every rank gets rank 0's value */
    dist_sum_doubles(&fid, 1);
    feature_stats_free(&s.feat);
    feature_stats_free(&r.feat);
    return fid;
}

int evaluate(const EvalOptions *o) {
    long n = o->n, first, count, held = 0;
    char source[1200];
    float *x;
    int *labels = NULL;
    if (o->real_split) {
        x = real_images(o->ref_dir, o->real_split, &n, o->noise, &first, &count, &labels);
        snprintf(source, sizeof source, "%s/%s (real)", o->ref_dir, o->real_split);
    } else {
        x = sample_images(o->samples, &n, &first, &count, &labels, &held);
        snprintf(source, sizeof source, "%s", o->samples);
    }
    Scores s, r;
    Scorer sc;
    scorer_open(&sc, o->classifier, o->ref_dir);
    score_both(&s, &r, &sc, x, labels, count, 1);
    const double cls_acc = sc.cls_acc;
    const long n_ref = r.feat.n;
    double precision = NAN, recall = NAN;
    const long n_pr = manifold_scores(&precision, &recall, &s, n, &r, n_ref);
    PerClass pc, *pcp = NULL;
    if (!o->real_split && labels) { /* conditional samples: class by class too */
        per_class(&pc, &sc, x, labels, count);
        pcp = &pc;
    }
    scorer_close(&sc);

    int status = 0;
    if (dist_is_root()) {
        double fid_mean = NAN;
        const double fid = fid_of(&s, &r, &fid_mean);
        double entropy = 0.0, kl_marginal = 0.0;
        for (int k = 0; k < CLS_CLASSES; k++) {
            const double h = s.hist[k] / n, py = s.prob[k] / n;
            if (h > 0) entropy -= h * log(h);
            if (py > 0) kl_marginal += py * log(py);
        }
        const double is = exp(s.plogp / n - kl_marginal), confidence = s.confidence / n;
        const long spread_over = labels && n < held ? held : 0; /* sample_images spread them */
        if (spread_over)
            printf("images      %s (N = %ld of its %ld, spread evenly over the file: its classes "
                   "may come in runs)\n", source, n, held);
        else printf("images      %s (N = %ld%s)\n", source, n, n < o->n ? ", all the file holds" : "");
        if (o->real_split && o->noise > 0) printf("noise       N(0, %g^2) added, clamped to [-1, 1]\n", o->noise);
        printf("reference   %s/t10k (N = %ld)\n", o->ref_dir, n_ref);
        printf("classifier  %s (test accuracy %.4f)\n", o->classifier, cls_acc);
        printf("FID         %.3f   (N = %ld; smaller is better, biased upwards for small N)\n", fid, n);
        printf("            = %.3f from the feature means + %.3f from the covariances\n", fid_mean,
               fid - fid_mean);
        printf("classes     ");
        for (int k = 0; k < CLS_CLASSES; k++) printf("%d:%.1f%% ", k, 100.0 * s.hist[k] / n);
        printf("\nentropy     %.4f nats of the predicted classes (uniform: %.4f)\n", entropy, log(CLS_CLASSES));
        printf("confidence  %.4f mean top probability\n", confidence);
        printf("IS analogue %.3f (at most 10)\n", is);
        if (isnan(precision)) {
            printf("precision   n/a (needs more than %d images)\nrecall      n/a\n", MANIFOLD_K);
        } else {
            printf("precision   %.4f of %ld images lie in the feature manifold of %ld test images\n",
                   precision, n_pr, n_pr);
            printf("recall      %.4f of those test images lie in the images' feature manifold\n"
                   "            (k = %d nearest-neighbour balls in the classifier's features; the\n"
                   "            test images spread evenly over the test set)\n", recall, MANIFOLD_K);
        }
        if (o->real_split) printf("accuracy    %.4f against the labels\n", s.correct / n);
        if (pcp) {
            printf("as asked    %.4f of the images are classified as the class they were generated "
                   "for (/labels)\n", s.correct / n);
            print_per_class(pcp);
        }
        if (o->out_json)
            write_json(o, source, n, n_ref, fid, fid_mean, s.hist, entropy, confidence, is, precision,
                       recall, n_pr, cls_acc, o->real_split || pcp ? s.correct / n : -1.0, pcp,
                       spread_over);
    }
    feature_stats_free(&s.feat);
    feature_stats_free(&r.feat);
    free(s.keep), free(r.keep);
    free(x);
    free(labels);
    return status;
}

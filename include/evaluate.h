/* evaluate.h: how good generated images are, measured with the MNIST classifier:
 *
 *   FID          Frechet distance between the classifier's 128 penultimate features of the
 *                images and of the reference images (the 10,000 MNIST test images)
 *   histogram    predicted class of each image; its entropy (ln 10 = 2.303 is uniform)
 *   confidence   mean of the top softmax probability
 *   IS analogue  exp(E_x KL(p(y|x) || p(y))), at most 10
 *   precision,   fraction of the images in the feature manifold of as many test images (spread
 *   recall       evenly over the test set), and of those in the images' manifold (manifold.h);
 *                at most 10,000 of each
 *
 * The FID of N images is biased upwards for small N: every number is reported with its N.
 * Runs over MPI ranks (each its share of both image sets; the statistics are summed). */
#ifndef DDPM_EVALUATE_H
#define DDPM_EVALUATE_H

typedef struct {
    const char *samples;    /* FILE.h5 with /samples [N, 1, 28, 28] in [-1, 1], or NULL */
    const char *real_split; /* instead: real images of this split of ref_dir ("train", "t10k") */
    double noise;           /* real images: add N(0, noise^2) (clamped to [-1, 1]) */
    const char *classifier; /* classifier file */
    const char *ref_dir;    /* the reference images: ref_dir/t10k */
    long n;                 /* images to score (the first n; of a file with /labels, n spread
                             * evenly over it) */
    const char *out_json;   /* write the numbers here too (NULL: print only) */
} EvalOptions;

int evaluate(const EvalOptions *o);

/* FID of images already in memory: this rank's share x [count, 1, 28, 28] of the images,
 * against ref_dir/t10k. Collective; every rank returns the same value. */
/* Before training that scores FIDs (train.eval_every): die now, naming what is wrong, unless
 * `classifier` loads as a classifier file and ref_dir holds the 28x28 t10k reference images
 * (not after the first epoch). */
void evaluate_check_inputs(const char *classifier, const char *ref_dir);
double evaluate_fid(const char *classifier, const char *ref_dir, const float *x, long count);

#endif

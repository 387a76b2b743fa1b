/* sampler_fixture.h: a small U-Net's parameter table and random weights plus a schedule, for
 * the tests that run sample_run against the reverse process written out by hand. */
#ifndef DDPM_TESTS_SAMPLER_FIXTURE_H
#define DDPM_TESTS_SAMPLER_FIXTURE_H

#include <stdlib.h>

#include "diffusion.h"
#include "model.h"
#include "util.h"

typedef struct {
    ModelConfig cfg;
    Schedule sched;
    ParamTable table;
    float *params;
    size_t dim;
} Fixture;

/* cfg's network with weights from params_initialise(seed); the schedule of kind over T steps
 * (linear betas 1e-4..0.02) */
static inline void fixture_build(Fixture *f, ModelConfig cfg, uint64_t seed, ScheduleKind kind,
                                 int T) {
    f->cfg = cfg;
    Model m;
    model_build_inference(&m, &f->cfg, 1);
    f->table = m.table;
    m.table = (ParamTable){0}; /* keep the table; free the rest */
    model_free(&m);
    f->params = floats_alloc(f->table.total);
    params_initialise(&f->table, f->params, seed);
    schedule_build(&f->sched, kind, T, 1e-4, 0.02);
    f->dim = (size_t)f->cfg.in_channels * f->cfg.image_size * f->cfg.image_size;
}

static inline void fixture_free(Fixture *f) {
    params_free_table(&f->table);
    free(f->params);
    schedule_free(&f->sched);
}

#endif

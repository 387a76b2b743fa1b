/* tape.h: how the U-Net builder appends slots and ops to a Model (internal to src/model). */
#ifndef DDPM_TAPE_H
#define DDPM_TAPE_H

#include "model.h"

/* A new activation slot of per-image shape [c, h, w]; returns its index. */
int tape_slot(Model *m, int c, int h, int w);
/* Append an op reading slots in0/in1 (-1 when unused) and writing slot out. The returned pointer
 * is valid until the next tape_op call. */
Op *tape_op(Model *m, OpKind kind, const char *name, int in0, int in1, int out);
/* Lay out the slots for max_batch images and allocate the arenas and the conv workspace. */
void tape_allocate(Model *m, int max_batch);
/* Fill m->grads_final from the ops and the table (called by tape_allocate). */
void tape_grads_final(Model *m);

#endif

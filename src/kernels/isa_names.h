/* isa_names.h - the kernel files' names in a portable build (-Dnative=false
 * on x86-64), which compiles attn.c, layers.c, tile_gemm.c and
 * heads/combiner_logsparse.c (the code written for a vector unit) once per
 * x86-64 level and picks one copy when the process starts (dispatch.c,
 * docs/design.md §4.1 "Kernels per CPU level"). Each kernel file includes this first; with
 * RA_ISA_SUFFIX (set by src/meson.build, e.g. _x86_64_v3) every function it
 * defines gets the suffix, so the copies link side by side and dispatch.c
 * defines the public names. Without RA_ISA_SUFFIX (a -Dnative=true build)
 * it does nothing. A function added to a kernel file and exported needs a
 * line here and one in dispatch.c's lists (the link fails otherwise). */
#ifndef RINGATTN_KERNELS_ISA_NAMES_H
#define RINGATTN_KERNELS_ISA_NAMES_H

#ifdef RA_ISA_SUFFIX
#define RA_ISA_CAT2(a, b) a##b
#define RA_ISA_CAT(a, b) RA_ISA_CAT2(a, b)
#define RA_ISA_NAME(f) RA_ISA_CAT(f, RA_ISA_SUFFIX)

/* attn.c */
#define ra_attn_scratch_floats RA_ISA_NAME(ra_attn_scratch_floats)
#define ra_attn_scratch_floats_threads RA_ISA_NAME(ra_attn_scratch_floats_threads)
#define ra_attn_fwd_init RA_ISA_NAME(ra_attn_fwd_init)
#define ra_attn_fwd_block RA_ISA_NAME(ra_attn_fwd_block)
#define ra_attn_fwd_finish RA_ISA_NAME(ra_attn_fwd_finish)
#define ra_attn_bwd_rowdot RA_ISA_NAME(ra_attn_bwd_rowdot)
#define ra_attn_bwd_block RA_ISA_NAME(ra_attn_bwd_block)
#define ra_attn_bwd_block_split RA_ISA_NAME(ra_attn_bwd_block_split)
#define ra_attn_flops_fwd RA_ISA_NAME(ra_attn_flops_fwd)
#define ra_attn_flops_bwd RA_ISA_NAME(ra_attn_flops_bwd)
/* tile_gemm.c (called by attn.c only: each copy calls its own) */
#define ra_tile_pack_kt RA_ISA_NAME(ra_tile_pack_kt)
#define ra_tile_qkt RA_ISA_NAME(ra_tile_qkt)
#define ra_tile_pv RA_ISA_NAME(ra_tile_pv)
#define ra_tile_ptv RA_ISA_NAME(ra_tile_ptv)
/* heads/combiner_logsparse.c (its per-row loops: rowvec.h, vmath.h) */
#define ra_ls_forward RA_ISA_NAME(ra_ls_forward)
#define ra_ls_backward RA_ISA_NAME(ra_ls_backward)
/* layers.c */
#define ra_rmsnorm_forward RA_ISA_NAME(ra_rmsnorm_forward)
#define ra_rmsnorm_backward RA_ISA_NAME(ra_rmsnorm_backward)
#define ra_linear_forward RA_ISA_NAME(ra_linear_forward)
#define ra_linear_backward RA_ISA_NAME(ra_linear_backward)
#define ra_rope_forward RA_ISA_NAME(ra_rope_forward)
#define ra_rope_backward RA_ISA_NAME(ra_rope_backward)
#define ra_swiglu_forward RA_ISA_NAME(ra_swiglu_forward)
#define ra_swiglu_backward RA_ISA_NAME(ra_swiglu_backward)
#define ra_gelu_forward RA_ISA_NAME(ra_gelu_forward)
#define ra_gelu_backward RA_ISA_NAME(ra_gelu_backward)
#define ra_embed_forward RA_ISA_NAME(ra_embed_forward)
#define ra_embed_backward RA_ISA_NAME(ra_embed_backward)
#define ra_xent RA_ISA_NAME(ra_xent)
#define ra_xent_rows RA_ISA_NAME(ra_xent_rows)
#define ra_rownorm_forward RA_ISA_NAME(ra_rownorm_forward)
#define ra_rownorm_backward RA_ISA_NAME(ra_rownorm_backward)
#define ra_gram_accumulate RA_ISA_NAME(ra_gram_accumulate)
#define ra_kappa_from_gram RA_ISA_NAME(ra_kappa_from_gram)
#endif

#endif

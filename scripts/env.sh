# env.sh - sourced by the scripts: Open MPI settings for running as root and
# with more ranks than cores (a laptop, a CI box), and the build directory.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=1
# containers often lack the kernel's cross-memory attach; shared memory copies instead
export OMPI_MCA_btl_vader_single_copy_mechanism=none
RINGATTN_BUILD=${RINGATTN_BUILD:-build}

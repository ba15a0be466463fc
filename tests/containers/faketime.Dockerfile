# A session image plus libfaketime, for tests/containers/compose.postgres.yaml: the
# library is the one the `libfaketime` Python package ships (the dev extra), copied
# into the build context by the test. Debian 12's own libfaketime (0.9.10) makes
# Python's time.sleep fail with EINVAL once the monotonic clock is left unfaked.
ARG IMAGE
FROM ${IMAGE}
COPY libfaketime.so.1 /usr/local/lib/faketime/libfaketime.so.1

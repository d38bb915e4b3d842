"""The layers ask glibc's malloc to keep freed memory (warm pages for the next batch)."""
import platform

from netbuilder.core.layers.heap import keep_freed_memory


def test_malloc_accepts_the_thresholds_on_glibc():
    assert platform.libc_ver()[0] == "glibc"  # this project's machines; elsewhere it is a no-op
    assert keep_freed_memory() is True

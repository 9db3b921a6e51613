"""Tests of the benchmark scripts under benchmarks/ (their measuring logic, not their numbers)."""

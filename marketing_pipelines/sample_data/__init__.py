"""Deterministic sample data (GitLab-like B2B SaaS marketing raw data) for local development and tests."""

from __future__ import annotations

from marketing_pipelines.sample_data.generator import EventFile, SampleData, generate
from marketing_pipelines.sample_data.loader import warehouse_is_empty, write_sample_data

__all__ = ["EventFile", "SampleData", "generate", "warehouse_is_empty", "write_sample_data"]

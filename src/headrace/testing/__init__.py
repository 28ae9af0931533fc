"""Testing utilities: assert_that, equal_to, is_empty, TestPipeline."""

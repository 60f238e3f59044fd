"""The compiler: small pure passes over `ir.Program`, listed once in `pipeline.PASSES`, then planning."""

"""`python -m phi_eval` is the same as the `phi-eval` console script."""

from phi_eval.cli import main

if __name__ == "__main__":
    main()

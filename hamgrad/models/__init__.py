"""hamgrad.models: gradient networks (GradNet-C/M, mGradNet-C/M) and the HNN and MLP baselines."""

"""Networks shared by methods: the diffusion U-Net (and, later, DCGAN nets)."""

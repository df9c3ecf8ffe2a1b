"""Settings shared by the DDPM studies: U-Net sizes (every smoke scale uses the same small
network, every full scale the same paper-sized one) and the quality metrics they report."""

# about 150k parameters: trains a few hundred steps a minute on one CPU core
SMOKE_UNET = dict(n_feat=16, ch_mult=(1, 2), attention=False, batch_size=32, lr=1e-3)
# about 4M parameters at 28x28, the size of the DDPM MNIST baselines
FULL_UNET = dict(n_feat=64, ch_mult=(1, 2, 2), attention=True, batch_size=128, lr=2e-4,
                 ema_decay=0.999)

# domain metrics always work offline; the Inception ones need the weights (`genbench assets`)
QUALITY = ("fid_domain", "kid_domain", "precision_domain", "recall_domain",
           "fid_inception", "kid_inception")

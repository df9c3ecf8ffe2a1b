"""U-Net sizes shared by the DDPM studies, so that every study's smoke scale uses the same
small network and every full scale the same paper-sized one."""

# about 150k parameters: trains a few hundred steps a minute on one CPU core
SMOKE_UNET = dict(n_feat=16, ch_mult=(1, 2), attention=False, batch_size=32, lr=1e-3)
# about 4M parameters at 28x28, the size of the DDPM MNIST baselines
FULL_UNET = dict(n_feat=64, ch_mult=(1, 2, 2), attention=True, batch_size=128, lr=2e-4,
                 ema_decay=0.999)

# BPF cost benchmark tools

set terminal svg size 900,560 font 'sans,10'
set output 'docs/results/study-cpu-2core/report/fig_cpu_time.svg'
set title "CPU epoch time (2 threads)"
set xlabel "image size (px)"
set ylabel "seconds per epoch"
set grid
set key outside right
set logscale y
plot 'docs/results/study-cpu-2core/report/fig_cpu_time.dat' index 0 with linespoints lw 2 title "histocnn, batch 10", 'docs/results/study-cpu-2core/report/fig_cpu_time.dat' index 1 with linespoints lw 2 title "histocnn, batch 50", 'docs/results/study-cpu-2core/report/fig_cpu_time.dat' index 2 with linespoints lw 2 title "histocnn, batch 150", 'docs/results/study-cpu-2core/report/fig_cpu_time.dat' index 3 with linespoints lw 2 title "pytorch, batch 10", 'docs/results/study-cpu-2core/report/fig_cpu_time.dat' index 4 with linespoints lw 2 title "pytorch, batch 50", 'docs/results/study-cpu-2core/report/fig_cpu_time.dat' index 5 with linespoints lw 2 title "pytorch, batch 150"

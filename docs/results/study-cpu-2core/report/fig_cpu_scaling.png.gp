set terminal pngcairo size 900,560 font 'sans,10'
set output 'docs/results/study-cpu-2core/report/fig_cpu_scaling.png'
set title "CPU scaling"
set xlabel "threads"
set ylabel "speed-up over 1 thread"
set grid
set key outside right
set logscale x 2
plot 'docs/results/study-cpu-2core/report/fig_cpu_scaling.dat' index 0 with linespoints lw 2 title "histocnn, batch 10", 'docs/results/study-cpu-2core/report/fig_cpu_scaling.dat' index 1 with linespoints lw 2 title "histocnn, batch 50", 'docs/results/study-cpu-2core/report/fig_cpu_scaling.dat' index 2 with linespoints lw 2 title "histocnn, batch 150", 'docs/results/study-cpu-2core/report/fig_cpu_scaling.dat' index 3 with lines dt 2 lw 2 title "ideal"

set terminal pngcairo size 900,560 font 'sans,10'
set output 'docs/results/study-cpu-2core/report/fig_breakdown.png'
set title "Per-step time"
set xlabel ""
set ylabel "milliseconds per step"
set grid
set key outside right
set boxwidth 0.7
set xtics ('data' 0, 'forward' 1, 'backward' 2, 'optimizer' 3, 'allocator' 4)
set yrange [0:*]
plot 'docs/results/study-cpu-2core/report/fig_breakdown.dat' index 0 with boxes fs solid 0.6 lw 2 title "data wait 19.66 ms", 'docs/results/study-cpu-2core/report/fig_breakdown.dat' index 1 with boxes fs solid 0.6 lw 2 title "forward 285.19 ms", 'docs/results/study-cpu-2core/report/fig_breakdown.dat' index 2 with boxes fs solid 0.6 lw 2 title "backward 411.65 ms", 'docs/results/study-cpu-2core/report/fig_breakdown.dat' index 3 with boxes fs solid 0.6 lw 2 title "optimizer 3.58 ms", 'docs/results/study-cpu-2core/report/fig_breakdown.dat' index 4 with boxes fs solid 0.6 lw 2 title "allocator 0.00 ms"
